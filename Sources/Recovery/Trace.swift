import Foundation
import NIOConcurrencyHelpers
import SecretJSON

/// One recorded transition: step id, event, time since start, and public
/// detail (keeper ids, outcomes) — never shard or key bytes.
public struct TraceEntry: Sendable, Equatable {
    public let step: String
    public let event: String
    public let milliseconds: Double
    public let keeper: Int?
    public let detail: String?

    /// A non-negative value with exactly three decimals (as `%.3f`, without C varargs).
    static func threeDecimals(_ value: Double) -> String {
        let thousandths = Int((max(value, 0) * 1000).rounded())
        let fraction = thousandths % 1000
        return "\(thousandths / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }

    /// `{"step":"4.4","event":"shard_received","t_ms":1.234,"keeper":2}`
    public var jsonLine: String {
        var s = "{\"step\":\"\(step)\",\"event\":\"\(event)\",\"t_ms\":\(Self.threeDecimals(milliseconds))"
        if let keeper { s += ",\"keeper\":\(keeper)" }
        if let detail { s += ",\"detail\":" + JSONText.quoted(detail) }
        return s + "}"
    }
}

/// Collects the trace of a run and, with `--trace FILE`, appends each entry
/// to the file as one JSON line as it happens (one `write`, so a killed
/// process leaves every line recorded before it died).
///
/// The clock starts once the file is open: opening it is not recovery.
/// Plain POSIX calls rather than FileManager/FileHandle: this runs on the
/// recovery's path, where Foundation's first use costs runtime type lookups.
public final class TraceRecorder: Sendable {
    private let entries = NIOLockedValueBox<[TraceEntry]>([])
    /// The trace file, or −1 without one.
    private let descriptor: Int32
    private let start: ContinuousClock.Instant
    private let observer: (@Sendable (TraceEntry) -> Void)?

    /// Why `--trace FILE` could not be opened (the path and the system's reason).
    public struct OpenError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot open \(path) for appending: \(reason)" }
    }

    /// `observer` sees each entry as it is recorded (the demo's live view).
    /// A new file is created with mode 0600; an existing one is appended to.
    public init(file: String? = nil, observer: (@Sendable (TraceEntry) -> Void)? = nil) throws(OpenError) {
        self.observer = observer
        if let file {
            let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw OpenError(path: file, reason: String(cString: strerror(errno))) }
            descriptor = fd
        } else {
            descriptor = -1
        }
        start = ContinuousClock.now
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    public var elapsedMilliseconds: Double { (ContinuousClock.now - start) / .milliseconds(1) }

    @discardableResult
    func record(_ transition: RecoveryTransition, keeper: Int? = nil, detail: String? = nil) -> TraceEntry {
        append(TraceEntry(step: transition.step, event: transition.event.rawValue, milliseconds: elapsedMilliseconds, keeper: keeper, detail: detail))
    }

    /// Step 1, the process start: the trace's first line, not a transition.
    func recordInitial() {
        append(TraceEntry(step: "1", event: nexusStartedEvent, milliseconds: elapsedMilliseconds, keeper: nil, detail: nil))
    }

    @discardableResult
    private func append(_ entry: TraceEntry) -> TraceEntry {
        entries.withLockedValue { $0.append(entry) }
        if descriptor >= 0 { Self.writeAll(descriptor, entry.jsonLine + "\n") }
        observer?(entry)
        return entry
    }

    /// The whole line, retrying short writes and interruptions. A failing
    /// write (a full disk) loses that line of the diagnostic trace; it does
    /// not stop the recovery.
    private static func writeAll(_ fd: Int32, _ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }

    public var recorded: [TraceEntry] { entries.withLockedValue { $0 } }
}
