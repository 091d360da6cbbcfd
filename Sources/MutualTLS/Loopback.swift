import Glibc

/// Small facts about the loopback interface, for the demo and the tests.
public enum Loopback {
    /// A port the kernel hands out as free on 127.0.0.1 right now (nil if none).
    public static func freePort() -> Int? {
        withSocket { fd in
            var addr = address(port: 0)
            guard withSockaddr(&addr, { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }) == 0 else { return nil }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            return Int(UInt16(bigEndian: addr.sin_port))
        }
    }

    /// Whether `port` can be bound on 127.0.0.1 (nobody listens there).
    public static func canBind(port: Int) -> Bool {
        withSocket { fd in
            var addr = address(port: port)
            return withSockaddr(&addr) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } == 0
        }
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool {
        withSocket { fd in
            var addr = address(port: port)
            return withSockaddr(&addr) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } == 0
        }
    }

    private static func withSocket<T>(_ body: (Int32) -> T) -> T {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return body(fd)
    }

    private static func address(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    private static func withSockaddr<T>(_ addr: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>) -> T) -> T {
        withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
}
