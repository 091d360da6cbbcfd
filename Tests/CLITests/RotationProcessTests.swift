import Foundation
import SpiffeIdentity
import Testing
import TestSupport

/// A running keeper whose SVID files are replaced with something it must not
/// present: one warning naming the file, and it keeps its keeper SVID.
@Suite(.serialized, .timeLimit(.minutes(5))) struct RotationProcessTests {
    /// Prints the URI SAN of the SVID the server presents (verified against the bundle).
    static let peerID = PythonTLS.preamble + """
        port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        s = context(cert, key, ca).wrap_socket(socket.create_connection(("127.0.0.1", port)))
        print(",".join(v for k, v in s.getpeercert().get("subjectAltName", ()) if k == "URI"))
        """

    @Test func aRotatedSVIDOfAnotherRoleOrExpiredIsRefused() async throws {
        let dir = try temporaryDirectory("rotation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = try DevelopmentPKI()
        try pki.writeBundle(into: dir)
        try pki.write(path: "/spike/keeper/1", name: "keeper", into: dir)
        try pki.write(path: "/spike/nexus", name: "nexus", into: dir)
        let port = freePort()
        let certFile = dir.appendingPathComponent("keeper.pem").path
        let (keeper, _, err) = try start(["keeper"], env: [
            "SPIKE_SVID_CERT_FILE": certFile, "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("keeper.key").path,
            "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path, "SPIKE_KEEPER_TLS_PORT": "127.0.0.1:\(port)"],
            dir: dir, name: "keeper")
        defer { if keeper.isRunning { kill(keeper.processIdentifier, SIGKILL) } }
        guard try await eventually(30, { portOpen(port) }) else {
            Issue.record("the keeper did not listen: \(text(err))")
            return
        }
        let script = dir.appendingPathComponent("peer.py")
        try Self.peerID.write(to: script, atomically: true, encoding: .utf8)
        func presented() async throws -> String {
            try await runToCompletion("/usr/bin/python3", [script.path, String(port), dir.appendingPathComponent("nexus.pem").path,
                                                           dir.appendingPathComponent("nexus.key").path,
                                                           dir.appendingPathComponent("bundle.pem").path]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try await presented() == "spiffe://spike.ist/spike/keeper/1")

        // The nexus SVID written over the keeper's files.
        try pki.write(path: "/spike/nexus", name: "keeper", into: dir)
        #expect(try await eventually(30) { text(err).contains("spiffe://spike.ist/spike/nexus is not a keeper ID") }, "\(text(err))")
        #expect(text(err).contains("\(certFile): SVID files changed but were not taken, keeping the previous SVID"))
        #expect(try await presented() == "spiffe://spike.ist/spike/keeper/1")

        // An expired keeper SVID.
        var expired = DevelopmentPKI.Flaws()
        expired.notValidBefore = Date().addingTimeInterval(-7200)
        expired.notValidAfter = Date().addingTimeInterval(-3600)
        try pki.write(path: "/spike/keeper/1", name: "keeper", into: dir, flaws: expired)
        #expect(try await eventually(30) { text(err).contains("the new SVID spiffe://spike.ist/spike/keeper/1 expired at") }, "\(text(err))")
        #expect(try await presented() == "spiffe://spike.ist/spike/keeper/1")
        kill(keeper.processIdentifier, SIGTERM)
    }
}
