/// Python's standard ssl module as an independent mutual-TLS client for tests
/// that need byte-level control (dripping, half-sent requests, idle keep-alive).
public enum PythonTLS {
    /// Defines `context(cert, key, ca)`: a client context presenting `cert`
    /// and trusting `ca`, without a hostname check (an SVID names no host).
    public static let preamble = """
        import socket, ssl, sys, time
        def context(cert, key, ca):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(ca)
            ctx.load_cert_chain(cert, key)
            return ctx

        """
}
