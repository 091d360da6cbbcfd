import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle
import SecureMemory
import SwiftASN1
import X509

/// One consistent view of a workload's identity: its SVID (chain and key)
/// and the trust bundles it verifies peers against.
///
/// Invariant: `chain` is non-empty, leaf first; `privateKey` matches the
/// leaf's public key; `id` is the leaf's SPIFFE ID; `generation` grows by one
/// with every change, so TLS layers can cache contexts per generation.
public struct X509Snapshot: Sendable {
    public let id: SpiffeID
    public let chain: [Certificate]
    public let chainDER: [[UInt8]]
    public let privateKey: Certificate.PrivateKey
    /// The key as PEM for the TLS library (secret; wiped when the snapshot goes).
    public let privateKeyPEM: SecretBytes
    /// Trust domain → CA certificates.
    public let bundles: [String: [Certificate]]
    public let generation: UInt64

    /// When the leaf expires; TLS layers refuse to present it afterwards.
    public var notAfter: Date { chain[0].notValidAfter }
    /// False only for test snapshots made by `presenting`, which must reach
    /// the peer even when broken or expired.
    public let leafRulesChecked: Bool

    /// A snapshot that presents `chain` as is, skipping the SVID rules on the
    /// leaf: for tests that must present a broken SVID to a peer.
    @_spi(Testing)
    public static func presenting(chain: [Certificate], privateKey: Certificate.PrivateKey, bundles: [String: [Certificate]]) throws -> X509Snapshot {
        try X509Snapshot(chain: chain, privateKey: privateKey, bundles: bundles, generation: 1, checkLeaf: false)
    }

    public init(chain: [Certificate], privateKey: Certificate.PrivateKey, bundles: [String: [Certificate]], generation: UInt64) throws(X509SourceError) {
        try self.init(chain: chain, privateKey: privateKey, bundles: bundles, generation: generation, checkLeaf: true)
    }

    init(chain: [Certificate], privateKey: Certificate.PrivateKey, bundles: [String: [Certificate]], generation: UInt64, checkLeaf: Bool) throws(X509SourceError) {
        guard let leaf = chain.first else { throw .invalid(file: "SVID", reason: "no certificate") }
        guard privateKey.publicKey == leaf.publicKey else { throw .keyDoesNotMatchCertificate }
        do {
            id = try SVIDVerifier.leafID(leaf, now: leaf.notValidBefore)
        } catch {
            guard !checkLeaf else { throw .invalid(file: "SVID", reason: "\(error)") }
            id = (try? SpiffeID(parsing: "spiffe://invalid.svid/unchecked"))!
        }
        self.chain = chain
        do {
            chainDER = try chain.map(DERCertificates.serialize)
            var pem = Array(try privateKey.serializeAsPEM().pemString.utf8)
            privateKeyPEM = SecretBytes(consuming: &pem)
        } catch {
            throw .invalid(file: "SVID", reason: "cannot serialize")
        }
        self.privateKey = privateKey
        self.bundles = bundles
        self.generation = generation
        leafRulesChecked = checkLeaf
    }
}

/// Where SVIDs come from: files (spiffe-helper style) or the Workload API.
public protocol X509Source: AnyObject, Sendable {
    /// The current SVID and bundles.
    var current: X509Snapshot { get }
}

public enum X509SourceError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingSetting(String)
    case unreadable(file: String, reason: String)
    case invalid(file: String, reason: String)
    case keyDoesNotMatchCertificate

    public var description: String {
        switch self {
        case .missingSetting(let s): "\(s) is not set"
        case .unreadable(let f, let r): "\(f): \(r)"
        case .invalid(let f, let r): "\(f): \(r)"
        case .keyDoesNotMatchCertificate: "the SVID key does not match the SVID certificate"
        }
    }
}

/// PEM loading with errors that name the file and never echo its contents.
public enum PEMFiles {
    public static func read(_ path: String) throws(X509SourceError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { throw .unreadable(file: path, reason: "no such file") }
            throw .unreadable(file: path, reason: "permission denied or not a regular file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .invalid(file: path, reason: "not PEM text") }
        return text
    }

    public static func certificates(pem: String, file: String) throws(X509SourceError) -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw .invalid(file: file, reason: "malformed PEM")
        }
        guard !documents.isEmpty else { throw .invalid(file: file, reason: "no PEM block") }
        var out: [Certificate] = []
        for (i, doc) in documents.enumerated() {
            guard doc.discriminator == "CERTIFICATE" else {
                throw .invalid(file: file, reason: "PEM block \(i + 1) is \(doc.discriminator), expected CERTIFICATE")
            }
            do {
                out.append(try Certificate(derEncoded: doc.derBytes))
            } catch {
                throw .invalid(file: file, reason: "PEM block \(i + 1) is not a valid X.509 certificate")
            }
        }
        return out
    }

    public static func privateKey(pem: String, file: String) throws(X509SourceError) -> Certificate.PrivateKey {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw .invalid(file: file, reason: "malformed PEM")
        }
        guard documents.count == 1 else { throw .invalid(file: file, reason: "expected exactly one PEM private key, found \(documents.count) blocks") }
        do {
            return try Certificate.PrivateKey(pemDocument: documents[0])
        } catch {
            throw .invalid(file: file, reason: "not a supported private key (PKCS#8, SEC1 EC P-256/P-384, or RSA)")
        }
    }

    /// Bundle CAs grouped by the trust domain of their own URI SAN when they
    /// carry one; CAs without one trust every domain named in `trustDomains`.
    public static func bundles(_ cas: [Certificate], trustDomains: [String]) -> [String: [Certificate]] {
        var out: [String: [Certificate]] = [:]
        for ca in cas {
            let ids = ((try? ca.extensions.subjectAlternativeNames) ?? nil)?.compactMap { name -> SpiffeID? in
                if case .uniformResourceIdentifier(let u) = name { return try? SpiffeID(parsing: u) }
                return nil
            } ?? []
            let domains = ids.isEmpty ? trustDomains : ids.map(\.trustDomain)
            for d in Set(domains) { out[d, default: []].append(ca) }
        }
        return out
    }
}

/// An SVID from three PEM files (`SPIKE_SVID_CERT_FILE`, `SPIKE_SVID_KEY_FILE`,
/// `SPIKE_SVID_BUNDLE_FILE`), re-read when they change so rotation needs no
/// restart. A half-written or mismatched pair keeps the previous SVID and
/// reports why through `onReject`.
///
/// As a `Service`: polls the files every `watchInterval` until graceful shutdown.
public final class FileX509Source: X509Source, Service, Sendable {
    public static let certVariable = "SPIKE_SVID_CERT_FILE"
    public static let keyVariable = "SPIKE_SVID_KEY_FILE"
    public static let bundleVariable = "SPIKE_SVID_BUNDLE_FILE"

    public let certFile: String
    public let keyFile: String
    public let bundleFile: String
    /// Trust domains a bundle CA without a SPIFFE URI SAN serves.
    public let trustDomains: [String]
    /// The current SVID, and the files' stamps at the last load attempt.
    private struct Loaded: Sendable {
        var snapshot: X509Snapshot
        var fingerprint: [FileStamp]
    }
    private let loaded: NIOLockedValueBox<Loaded>
    public let watchInterval: Duration
    private let onReject: @Sendable (String) -> Void
    private let onChange: @Sendable (X509Snapshot) -> Void
    /// Why a newly loaded SVID must not replace the current one (nil: take it).
    private let refusal: @Sendable (X509Snapshot) -> String?
    /// The wall clock of the expiry checks (tests move it instead of waiting).
    private let now: @Sendable () -> Date
    /// The generation whose expiry has been reported (once per SVID).
    private let reportedExpiry = NIOLockedValueBox<UInt64?>(nil)

    /// Loads the files now (an error names the file and the problem).
    public init(certFile: String, keyFile: String, bundleFile: String, trustDomains: [String],
                watchInterval: Duration = .milliseconds(500),
                onReject: @escaping @Sendable (String) -> Void = { _ in },
                onChange: @escaping @Sendable (X509Snapshot) -> Void = { _ in },
                refusal: @escaping @Sendable (X509Snapshot) -> String? = { _ in nil },
                now: @escaping @Sendable () -> Date = Date.init) throws(X509SourceError) {
        self.watchInterval = watchInterval
        self.refusal = refusal
        self.now = now
        self.certFile = certFile
        self.keyFile = keyFile
        self.bundleFile = bundleFile
        self.trustDomains = trustDomains
        self.onReject = onReject
        self.onChange = onChange
        let fingerprint = [FileStamp(certFile), FileStamp(keyFile), FileStamp(bundleFile)]
        let snapshot = try Self.load(certFile: certFile, keyFile: keyFile, bundleFile: bundleFile, trustDomains: trustDomains, generation: 1)
        loaded = NIOLockedValueBox(Loaded(snapshot: snapshot, fingerprint: fingerprint))
    }

    /// From the environment; nil when none of the three variables is set.
    public static func fromEnvironment(_ env: [String: String], trustDomains: [String],
                                       onReject: @escaping @Sendable (String) -> Void = { _ in },
                                       refusal: @escaping @Sendable (X509Snapshot) -> String? = { _ in nil }) throws(X509SourceError) -> FileX509Source? {
        let values = [certVariable, keyVariable, bundleVariable].map { env[$0].flatMap { $0.isEmpty ? nil : $0 } }
        if values.allSatisfy({ $0 == nil }) { return nil }
        for (name, value) in zip([certVariable, keyVariable, bundleVariable], values) where value == nil {
            throw .missingSetting(name)
        }
        return try FileX509Source(certFile: values[0]!, keyFile: values[1]!, bundleFile: values[2]!, trustDomains: trustDomains,
                                  onReject: onReject, refusal: refusal)
    }

    public var current: X509Snapshot { loaded.withLockedValue { $0.snapshot } }

    /// Polls the files every `watchInterval` and reloads on change, until
    /// graceful shutdown or cancellation.
    public func run() async {
        let interval = watchInterval
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: interval)
                self.reloadIfChanged()
                self.reportExpiry()
            }
        }
    }

    /// Re-reads the files if any changed; returns true when a new SVID was installed.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        let stamps = [FileStamp(certFile), FileStamp(keyFile), FileStamp(bundleFile)]
        let (unchanged, generation) = loaded.withLockedValue { (stamps == $0.fingerprint, $0.snapshot.generation) }
        if unchanged { return false }
        do {
            let next = try Self.load(certFile: certFile, keyFile: keyFile, bundleFile: bundleFile, trustDomains: trustDomains,
                                     generation: generation + 1)
            let clock = now()
            // Not refused when not yet valid: the refusal would be final for these files, and a
            // rotation a little ahead of this host's clock must still be taken once it is valid.
            let problem = clock > next.notAfter ? "the new SVID \(next.id) expired at \(next.notAfter)" : refusal(next)
            if let problem {
                loaded.withLockedValue { $0.fingerprint = stamps }
                onReject("\(certFile): SVID files changed but were not taken, keeping the previous SVID: \(problem)")
                return false
            }
            loaded.withLockedValue {
                $0.snapshot = next
                $0.fingerprint = stamps
            }
            onChange(next)
            return true
        } catch {
            // Keep the previous SVID; retry when the files change again.
            loaded.withLockedValue { $0.fingerprint = stamps }
            onReject("SVID files changed but were not loaded, keeping the previous SVID: \(error)")
            return false
        }
    }

    /// Says once, per SVID, that the current one has expired: connections then
    /// fail (it is never presented) until the files hold a newer one.
    public func reportExpiry() {
        let snapshot = current
        guard now() > snapshot.notAfter else { return }
        let first = reportedExpiry.withLockedValue { reported -> Bool in
            defer { reported = snapshot.generation }
            return reported != snapshot.generation
        }
        if first {
            onReject("\(certFile): the SVID \(snapshot.id) expired at \(snapshot.notAfter) and the files hold no newer one; "
                     + "no connection can be made with it")
        }
    }

    static func load(certFile: String, keyFile: String, bundleFile: String, trustDomains: [String], generation: UInt64) throws(X509SourceError) -> X509Snapshot {
        let chain = try PEMFiles.certificates(pem: PEMFiles.read(certFile), file: certFile)
        let key = try PEMFiles.privateKey(pem: PEMFiles.read(keyFile), file: keyFile)
        let cas = try PEMFiles.certificates(pem: PEMFiles.read(bundleFile), file: bundleFile)
        do {
            return try X509Snapshot(chain: chain, privateKey: key, bundles: PEMFiles.bundles(cas, trustDomains: trustDomains), generation: generation)
        } catch .keyDoesNotMatchCertificate {
            throw .invalid(file: keyFile, reason: "key does not match the certificate in \(certFile)")
        } catch .invalid(_, let reason) {
            throw .invalid(file: certFile, reason: reason)
        } catch {
            throw error
        }
    }
}

/// A file's identity and modification stamp, to notice replacement by rename
/// too; a file that cannot be stat'ed stamps as inode 0, size −1.
///
/// Read with stat(2), which follows links: a Kubernetes secret volume rotates
/// by pointing `..data` elsewhere, and the files' own links never change (the
/// lstat(2) that FileManager's attributes use saw no rotation). Those
/// attributes also resolve the owner's and group's names, an NSS look-up
/// (nsswitch.conf, passwd, group, the nscd socket) per file and poll.
struct FileStamp: Equatable {
    let inode: UInt64
    let size: Int64
    let modifiedSeconds: Int
    let modifiedNanoseconds: Int

    init(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            (inode, size, modifiedSeconds, modifiedNanoseconds) = (0, -1, 0, 0)
            return
        }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = info.st_mtim.tv_sec
        modifiedNanoseconds = info.st_mtim.tv_nsec
    }
}

/// A fixed snapshot (tests, the demo's in-process components).
public final class StaticX509Source: X509Source, Sendable {
    private let snapshot: NIOLockedValueBox<X509Snapshot>
    public init(_ snapshot: X509Snapshot) { self.snapshot = NIOLockedValueBox(snapshot) }
    public var current: X509Snapshot { snapshot.withLockedValue { $0 } }
    public func replace(_ next: X509Snapshot) { snapshot.withLockedValue { $0 = next } }
}
