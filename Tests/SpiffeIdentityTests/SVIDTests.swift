import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import Testing
import TestSupport
import X509
@testable import SpiffeIdentity

@Suite struct SVIDVerifierTests {
    let pki: DevelopmentPKI
    var bundles: [String: [Certificate]] { [pki.trustDomain: [pki.caCertificate]] }

    init() throws { pki = try DevelopmentPKI() }

    func verify(_ flaws: DevelopmentPKI.Flaws, path: String = "/spike/nexus", bundles: [String: [Certificate]]? = nil) async throws(SVIDError) -> VerifiedSVID {
        let cert = try! pki.issue(path: path, flaws: flaws).certificate
        return try await SVIDVerifier.verify(chain: [cert], bundles: bundles ?? self.bundles)
    }

    @Test func acceptsAValidSVID() async throws {
        let verified = try await verify(.init())
        #expect(verified.id.description == "spiffe://spike.ist/spike/nexus")
        #expect(verified.chain.count == 2)
    }

    /// The warm-up must walk the whole accepting path (every extension, the
    /// signature, the policies), not stop at an early refusal; and its leaf
    /// verifies only under its own CA: another CA given for the same trust
    /// domain refuses it.
    @Test func warmUpChainVerifiesOnlyAsItsOwn() async throws {
        let ca = try Certificate(derEncoded: WarmUpChain.ca)
        let verified = try await SVIDVerifier.verify(chain: [WarmUpChain.leaf], bundles: [WarmUpChain.trustDomain: [ca]], now: WarmUpChain.instant)
        #expect(verified.id.description == "spiffe://warm-up.invalid/spike/nexus")
        #expect(verified.chain.count == 2)
        await #expect(throws: SVIDError.chainDoesNotVerify) {
            try await SVIDVerifier.verify(chain: [WarmUpChain.leaf], bundles: [WarmUpChain.trustDomain: [pki.caCertificate]],
                                          now: WarmUpChain.instant)
        }
    }

    @Test func refusesEachBrokenRule() async {
        var ca = DevelopmentPKI.Flaws(); ca.markAsCA = true
        var sign = DevelopmentPKI.Flaws(); sign.keyCertSign = true
        var two = DevelopmentPKI.Flaws(); two.extraURI = "spiffe://spike.ist/spike/keeper"
        var none = DevelopmentPKI.Flaws(); none.noURI = true
        var expired = DevelopmentPKI.Flaws(); expired.notValidBefore = Date().addingTimeInterval(-7200); expired.notValidAfter = Date().addingTimeInterval(-3600)
        var future = DevelopmentPKI.Flaws(); future.notValidBefore = Date().addingTimeInterval(3600)
        let cases: [(DevelopmentPKI.Flaws, SVIDError)] = [
            (ca, .leafIsCA), (sign, .leafCanSignCertificates), (two, .multipleURISANs(2)), (none, .noURISAN),
            (expired, .expired), (future, .notYetValid),
        ]
        for (flaws, expected) in cases {
            await #expect(throws: expected) { try await verify(flaws) }
        }
    }

    /// A known extension that does not parse refuses the SVID, in the leaf
    /// rules (which file and Workload API sources run on their own SVID) and
    /// in peer verification; it is never read as absent.
    @Test func refusesAMalformedExtension() async throws {
        let oids: [(String, ASN1ObjectIdentifier)] = [
            ("subjectAltName", .X509ExtensionID.subjectAlternativeName), ("basicConstraints", .X509ExtensionID.basicConstraints),
            ("keyUsage", .X509ExtensionID.keyUsage), ("extendedKeyUsage", .X509ExtensionID.extendedKeyUsage),
            ("nameConstraints", .X509ExtensionID.nameConstraints), ("authorityKeyIdentifier", .X509ExtensionID.authorityKeyIdentifier),
            ("subjectKeyIdentifier", .X509ExtensionID.subjectKeyIdentifier), ("authorityInfoAccess", .X509ExtensionID.authorityInformationAccess),
        ]
        #expect(oids.map(\.0) == SVIDVerifier.knownExtensions.map(\.name))
        for (name, oid) in oids {
            var flaws = DevelopmentPKI.Flaws()
            flaws.malformedExtension = oid
            let leaf = try pki.issue(path: "/spike/nexus", flaws: flaws).certificate
            #expect(throws: SVIDError.malformedExtension(name)) { try SVIDVerifier.leafID(leaf) }
            await #expect(throws: SVIDError.malformedExtension(name)) { try await verify(flaws) }
        }
    }

    @Test func refusesUnknownCAsAndForeignTrustDomains() async throws {
        let stranger = try DevelopmentPKI()
        let cert = try stranger.issue(path: "/spike/nexus").certificate
        await #expect(throws: SVIDError.chainDoesNotVerify) { try await SVIDVerifier.verify(chain: [cert], bundles: bundles) }
        let foreign = try DevelopmentPKI(trustDomain: "evil.example")
        let foreignCert = try foreign.issue(path: "/spike/nexus").certificate
        await #expect(throws: SVIDError.noBundle(trustDomain: "evil.example")) {
            try await SVIDVerifier.verify(chain: [foreignCert], bundles: bundles)
        }
        // A bundle for one domain does not vouch for another.
        await #expect(throws: SVIDError.chainDoesNotVerify) {
            try await SVIDVerifier.verify(chain: [foreignCert], bundles: ["evil.example": [pki.caCertificate]])
        }
    }

    @Test func refusesGarbage() async {
        await #expect(throws: SVIDError.emptyChain) { try await SVIDVerifier.verify(chain: [[UInt8]](), bundles: bundles) }
        await #expect(throws: SVIDError.unparseable(position: 0)) { try await SVIDVerifier.verify(chain: [[1, 2, 3]], bundles: bundles) }
    }
}

@Suite struct FileSourceTests {
    let dir: URL
    let pki: DevelopmentPKI

    init() throws {
        dir = try temporaryDirectory("svid")
        pki = try DevelopmentPKI()
        try pki.write(path: "/spike/keeper/1", name: "svid", into: dir)
        try pki.writeBundle(into: dir)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func source() throws -> FileX509Source {
        try FileX509Source(certFile: path("svid.pem"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"), trustDomains: ["spike.ist"])
    }

    @Test func loadsFromFiles() throws {
        let s = try source()
        #expect(s.current.id.description == "spiffe://spike.ist/spike/keeper/1")
        #expect(s.current.bundles["spike.ist"]?.count == 1)
        let attributes = try FileManager.default.attributesOfItem(atPath: path("svid.key"))
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func errorsNameTheFile() throws {
        #expect(throws: X509SourceError.unreadable(file: path("nope.pem"), reason: "no such file")) {
            try FileX509Source(certFile: path("nope.pem"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"), trustDomains: [])
        }
        try "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".write(toFile: path("bad.pem"), atomically: true, encoding: .utf8)
        #expect(throws: X509SourceError.invalid(file: path("bad.pem"), reason: "malformed PEM")) {
            try FileX509Source(certFile: path("bad.pem"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"), trustDomains: [])
        }
        // A key PEM given as the certificate file.
        #expect(throws: X509SourceError.invalid(file: path("svid.key"), reason: "PEM block 1 is PRIVATE KEY, expected CERTIFICATE")) {
            try FileX509Source(certFile: path("svid.key"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"), trustDomains: [])
        }
        try pki.write(path: "/spike/keeper/2", name: "other", into: dir)
        #expect(throws: X509SourceError.invalid(file: path("other.key"), reason: "key does not match the certificate in \(path("svid.pem"))")) {
            try FileX509Source(certFile: path("svid.pem"), keyFile: path("other.key"), bundleFile: path("bundle.pem"), trustDomains: [])
        }
        #expect(throws: X509SourceError.missingSetting("SPIKE_SVID_KEY_FILE")) {
            try FileX509Source.fromEnvironment(["SPIKE_SVID_CERT_FILE": path("svid.pem"), "SPIKE_SVID_BUNDLE_FILE": path("bundle.pem")], trustDomains: [])
        }
        #expect(try FileX509Source.fromEnvironment([:], trustDomains: []) == nil)
    }

    @Test func unreadableFiles() throws {
        // A directory where a file is expected cannot be read, even by root (CI runs as root).
        try FileManager.default.createDirectory(atPath: path("dir.key"), withIntermediateDirectories: true)
        #expect(throws: X509SourceError.unreadable(file: path("dir.key"), reason: "permission denied or not a regular file")) {
            try FileX509Source(certFile: path("svid.pem"), keyFile: path("dir.key"), bundleFile: path("bundle.pem"), trustDomains: [])
        }
        guard getuid() != 0 else { return }  // root reads files of any mode
        chmod(path("svid.key"), 0o000)
        #expect(throws: X509SourceError.unreadable(file: path("svid.key"), reason: "permission denied or not a regular file")) { try source() }
    }

    @Test func rotationAndHalfWrittenFiles() throws {
        let rejected = Locked<[String]>([])
        let watched = try FileX509Source(certFile: path("svid.pem"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"),
                                         trustDomains: ["spike.ist"], onReject: { rejected.append($0) })
        // Rotate to a new SVID: the next check picks it up.
        try pki.write(path: "/spike/keeper/rotated", name: "svid", into: dir)
        #expect(watched.reloadIfChanged())
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/rotated")
        #expect(watched.current.generation == 2)
        // Half-written: a new certificate whose key has not arrived yet keeps the previous SVID.
        try pki.write(path: "/spike/keeper/next", name: "next", into: dir)
        try FileManager.default.removeItem(atPath: path("svid.pem"))
        try FileManager.default.copyItem(atPath: path("next.pem"), toPath: path("svid.pem"))
        #expect(!watched.reloadIfChanged())
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/rotated")
        #expect(rejected.value.count == 1)
        #expect(rejected.value.first?.contains("keeping the previous SVID") == true)
        // The key arrives: now it loads.
        try FileManager.default.removeItem(atPath: path("svid.key"))
        try FileManager.default.copyItem(atPath: path("next.key"), toPath: path("svid.key"))
        #expect(watched.reloadIfChanged())
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/next")
    }

    /// A Kubernetes secret volume: each file is a link through `..data`, and an
    /// update points `..data` at a new directory by renaming a new link over
    /// it; the files' own links never change, so the stamps follow them.
    @Test func rotationThroughASwappedDirectoryLink() throws {
        let mount = dir.appendingPathComponent("mount")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        for (version, svid) in [("v1", "/spike/keeper/1"), ("v2", "/spike/keeper/rotated")] {
            let d = dir.appendingPathComponent(version)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            try pki.write(path: svid, name: "svid", into: d)
            try pki.writeBundle(into: d)
        }
        let data = mount.appendingPathComponent("..data").path
        try FileManager.default.createSymbolicLink(atPath: data, withDestinationPath: "../v1")
        for name in ["svid.pem", "svid.key", "bundle.pem"] {
            try FileManager.default.createSymbolicLink(atPath: mount.appendingPathComponent(name).path, withDestinationPath: "..data/" + name)
        }
        let watched = try FileX509Source(certFile: mount.appendingPathComponent("svid.pem").path,
                                         keyFile: mount.appendingPathComponent("svid.key").path,
                                         bundleFile: mount.appendingPathComponent("bundle.pem").path, trustDomains: ["spike.ist"])
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/1")
        #expect(!watched.reloadIfChanged())
        try FileManager.default.createSymbolicLink(atPath: data + "_tmp", withDestinationPath: "../v2")
        #expect(rename(data + "_tmp", data) == 0)
        #expect(watched.reloadIfChanged())
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/rotated")
        #expect(watched.current.generation == 2)
    }

    /// Rotated files that hold an expired SVID, or one of another role, are
    /// refused with one warning naming the file; the previous SVID stays. An
    /// SVID that expires in place is reported once.
    @Test func rotationRefusesExpiredAndForeignRoleSVIDs() throws {
        let rejected = Locked<[String]>([])
        let clock = Locked<[Date]>([Date()])
        let roots = TrustRoots()
        let watched = try FileX509Source(certFile: path("svid.pem"), keyFile: path("svid.key"), bundleFile: path("bundle.pem"),
                                         trustDomains: ["spike.ist"], onReject: { rejected.append($0) },
                                         refusal: { roots.id($0.id, hasRole: .keeper) ? nil : "\($0.id) is not a keeper ID" },
                                         now: { clock.value.last! })
        try pki.write(path: "/spike/nexus", name: "svid", into: dir)
        #expect(!watched.reloadIfChanged())
        #expect(watched.current.id.description == "spiffe://spike.ist/spike/keeper/1")
        #expect(rejected.value.last == "\(path("svid.pem")): SVID files changed but were not taken, keeping the previous SVID: "
                + "spiffe://spike.ist/spike/nexus is not a keeper ID")
        var expired = DevelopmentPKI.Flaws()
        expired.notValidBefore = Date().addingTimeInterval(-7200)
        expired.notValidAfter = Date().addingTimeInterval(-3600)
        try pki.write(path: "/spike/keeper/1", name: "svid", into: dir, flaws: expired)
        #expect(!watched.reloadIfChanged())
        #expect(rejected.value.count == 2 && rejected.value.last?.contains(": the new SVID spiffe://spike.ist/spike/keeper/1 expired at") == true)
        #expect(watched.current.generation == 1)
        // A good one is taken; once it expires in place, that is said once.
        try pki.write(path: "/spike/keeper/1", name: "svid", into: dir, validFor: 600)
        #expect(watched.reloadIfChanged())
        watched.reportExpiry()
        #expect(rejected.value.count == 2)
        clock.append(Date().addingTimeInterval(3600))
        watched.reportExpiry()
        watched.reportExpiry()
        #expect(rejected.value.count == 3)
        #expect(rejected.value.last?.hasPrefix("\(path("svid.pem")): the SVID spiffe://spike.ist/spike/keeper/1 expired at") == true)
    }
}

final class Locked<T>: @unchecked Sendable {
    private let box: NIOLockedValueBox<T>
    init(_ v: T) { box = NIOLockedValueBox(v) }
    var value: T { box.withLockedValue { $0 } }
    func append<E>(_ e: E) where T == [E] { box.withLockedValue { $0.append(e) } }
}
