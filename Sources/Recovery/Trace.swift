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
/// to the file as one JSON line as it happens.
public final class TraceRecorder: Sendable {
    private let entries = NIOLockedValueBox<[TraceEntry]>([])
    private let handle: FileHandle?
    private let start = ContinuousClock.now
    private let observer: (@Sendable (TraceEntry) -> Void)?

    /// `observer` sees each entry as it is recorded (the demo's live view).
    public init(file: String? = nil, observer: (@Sendable (TraceEntry) -> Void)? = nil) throws {
        self.observer = observer
        if let file {
            if !FileManager.default.fileExists(atPath: file) {
                guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                    throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: file])
                }
            }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            try h.seekToEnd()
            handle = h
        } else {
            handle = nil
        }
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
        handle?.write(Data((entry.jsonLine + "\n").utf8))
        observer?(entry)
        return entry
    }

    public var recorded: [TraceEntry] { entries.withLockedValue { $0 } }
}
