import Foundation
import Logging
import NIOConcurrencyHelpers

/// A swift-log handler for the long-running commands: one line per event,
/// `2026-11-29T10:45:31.123Z info spike-keeper: message`, written to stderr.
/// A `batched` handler (the Keeper's, one line per request) writes through a
/// small buffer flushed every 50 ms, when it fills, for every warning or
/// worse, at `flush()` and at exit: swift-log's StreamLogHandler writes on
/// every line, which costs the Keeper about a third of its throughput. Any
/// other handler writes each line at once, so a supervisor reading the pipe
/// sees a state change (a recovery step, operational) when it happens.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let batched: Bool
    let sink: LogSink

    public init(label: String, level: Logger.Level, batched: Bool = false) {
        self.init(label: label, level: level, batched: batched, sink: .shared)
    }

    init(label: String, level: Logger.Level, batched: Bool, sink: LogSink) {
        self.label = label
        logLevel = level
        self.batched = batched
        self.sink = sink
    }

    /// Writes what batched handlers hold (after a state change worth seeing at once).
    public static func flush() { LogSink.shared.flush() }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        var text = sink.timestamp() + " \(level) \(label): \(message)"
        let all = explicit.map { self.metadata.merging($0) { $1 } } ?? metadata
        if !all.isEmpty { text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        sink.append(text + "\n", urgent: !batched || level >= .warning)
    }
}

/// The buffered stderr writer behind LineLogHandler.
/// `@unchecked`: `timer` (a `DispatchSourceTimer` existential) is not Sendable; it is only touched in `init`.
final class LogSink: @unchecked Sendable {
    static let shared = LogSink(fd: 2)
    let fd: Int32
    private struct State {
        var buffer: [UInt8] = []
        var cachedSecond = -1
        var cachedPrefix = ""
    }
    private let state = NIOLockedValueBox(State())
    /// Held by a flush from taking the lines to writing them, so that two
    /// flushes cannot write their lines out of order. Adding a line to the
    /// buffer never waits on it; an urgent line's own flush does.
    private let writing = NIOLock()
    private let timer: DispatchSourceTimer

    /// `interval`: how long a batched line may wait (tests make it long, to see the batching).
    init(fd: Int32, interval: DispatchTimeInterval = .milliseconds(50)) {
        self.fd = fd
        state.withLockedValue { $0.buffer.reserveCapacity(1 << 16) }
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.flush() }
        timer.resume()
        if fd == 2 { atexit { LogSink.shared.flush() } }
    }

    deinit { timer.cancel() }

    /// UTC time with milliseconds; the date-and-seconds part is formatted once per second.
    func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let millis = Int(now.tv_nsec) / 1_000_000
        return state.withLockedValue { s in
            if Int(now.tv_sec) != s.cachedSecond {
                s.cachedPrefix = utcDateTime(secondsSinceEpoch: Int(now.tv_sec))
                s.cachedSecond = Int(now.tv_sec)
            }
            return s.cachedPrefix + "." + zeroPadded(millis, 3) + "Z"
        }
    }

    func append(_ line: String, urgent: Bool) {
        let full = state.withLockedValue { s in
            s.buffer.append(contentsOf: line.utf8)
            return s.buffer.count >= 32 * 1024
        }
        if full || urgent { flush() }
    }

    /// The buffer's reserved size, for tests of `flush`'s hand-back.
    var bufferCapacity: Int { state.withLockedValue { $0.buffer.capacity } }

    /// Takes the buffer's storage (a swap, not a copy: copying a shared array
    /// and emptying the original would allocate a new 64 KiB buffer on every
    /// flush, which the process's freed-heap fill then writes over twice),
    /// writes it, and gives the storage back for the next lines.
    func flush() {
        writing.withLock {
            var pending: [UInt8] = []
            // An empty buffer stays where it is, with its storage: the timer's
            // ticks find it empty most of the time.
            let took = state.withLockedValue { s in
                guard !s.buffer.isEmpty else { return false }
                swap(&pending, &s.buffer)
                return true
            }
            guard took else { return }
            pending.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
            pending.removeAll(keepingCapacity: true)
            state.withLockedValue { s in
                if s.buffer.isEmpty && s.buffer.capacity < pending.capacity { swap(&pending, &s.buffer) }
            }
        }
    }
}

/// "YYYY-MM-DDTHH:MM:SS" in UTC for POSIX time `t` (≥ 0). Computed here, not
/// by gmtime_r: glibc's first gmtime_r loads the time-zone file
/// (/etc/localtime), which UTC output never needs, on the start-up path.
func utcDateTime(secondsSinceEpoch t: Int) -> String {
    let days = t / 86_400, second = t % 86_400
    // Civil date from a day count (proleptic Gregorian, eras of 400 years
    // starting on 1 March so that the leap day ends the year).
    let z = days + 719_468
    let era = z / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let shiftedMonth = (5 * dayOfYear + 2) / 153  // 0 = March
    let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
    let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    return zeroPadded(year, 4) + "-" + zeroPadded(month, 2) + "-" + zeroPadded(day, 2) + "T"
        + zeroPadded(second / 3_600, 2) + ":" + zeroPadded(second / 60 % 60, 2) + ":" + zeroPadded(second % 60, 2)
}

/// `value` (non-negative) in decimal, left-padded with zeros to `width` digits.
/// Not `String(format:)`: its C varargs cost a runtime type lookup per argument
/// type the first time, on every process's start-up path.
func zeroPadded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
