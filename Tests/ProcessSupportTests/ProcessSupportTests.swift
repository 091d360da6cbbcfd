import Foundation
import Glibc
import Logging
@testable import ProcessSupport
import Testing
import TestSupport

@Suite struct ListenAddressTests {
    @Test func parsesEveryListenForm() throws {
        #expect(try ListenAddress.parse(":8443", defaultHost: "0.0.0.0") == ListenAddress(host: "0.0.0.0", port: 8443))
        #expect(try ListenAddress.parse("127.0.0.1:0", defaultHost: "0.0.0.0") == ListenAddress(host: "127.0.0.1", port: 0))
        #expect(try ListenAddress.parse("[::1]:9", defaultHost: "x") == ListenAddress(host: "::1", port: 9))
        #expect(ListenAddress(host: "::1", port: 9).description == "[::1]:9")
        #expect(try ListenAddress.parse(":9090", defaultHost: "127.0.0.1").host == "127.0.0.1")
    }

    @Test func refusesWhatIsNotAnAddress() {
        #expect(throws: ListenAddress.Problem.noColon("8443")) { try ListenAddress.parse("8443", defaultHost: "h") }
        #expect(throws: ListenAddress.Problem.badPort("h:99999")) { try ListenAddress.parse("h:99999", defaultHost: "h") }
        #expect(throws: ListenAddress.Problem.badPort("h:-1")) { try ListenAddress.parse("h:-1", defaultHost: "h") }
        #expect(throws: ListenAddress.Problem.badPort("h:")) { try ListenAddress.parse("h:", defaultHost: "h") }
        #expect(ListenAddress.Problem.badPort("h:x").description == "port must be 0...65535 (got \"h:x\")")
    }
}

@Suite(.timeLimit(.minutes(1))) struct ParentProcessWatchTests {
    /// A parent id that is not ours reads as "the parent is gone": the watch returns at once.
    @Test func returnsWhenTheParentIsNotThere() async {
        let watch = ParentProcessWatch(parent: getppid() &+ 1, logger: Logger(label: "test"), interval: .milliseconds(10))
        await watch.run()
    }

    /// With the parent alive, it keeps watching until cancelled.
    @Test func keepsWatchingWhileTheParentLives() async throws {
        let watch = ParentProcessWatch(parent: getppid(), logger: Logger(label: "test"), interval: .milliseconds(10))
        let task = Task { await watch.run() }
        try await Task.sleep(for: .milliseconds(100))
        let ended = Counter()
        let observer = Task { await task.value; ended.bump() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(ended.value == 0, "the watch ended while its parent lives")
        task.cancel()
        await observer.value
        #expect(ended.value == 1)
    }
}

/// Request lines wait in the buffer; state changes (and warnings) go out at
/// once and take what waited with them, in order.
@Suite struct LineLogHandlerTests {
    /// A pipe whose read end (fds[0]) `drain` can empty without blocking.
    func pipeWithNonBlockingReadEnd() throws -> [Int32] {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return fds
    }

    /// What the pipe holds now (non-blocking).
    func drain(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The log's own UTC formatting agrees with glibc's gmtime_r: the epoch,
    /// leap days (2000 is a leap year, 2100 is not), year ends, and a spread
    /// of instants up to the year 2400.
    @Test func utcTimestampsAgreeWithGmtime() {
        func reference(_ t: Int) -> String {
            var seconds = t, parts = tm()
            gmtime_r(&seconds, &parts)
            return zeroPadded(Int(parts.tm_year) + 1900, 4) + "-" + zeroPadded(Int(parts.tm_mon) + 1, 2) + "-"
                + zeroPadded(Int(parts.tm_mday), 2) + "T" + zeroPadded(Int(parts.tm_hour), 2) + ":"
                + zeroPadded(Int(parts.tm_min), 2) + ":" + zeroPadded(Int(parts.tm_sec), 2)
        }
        let fixed = [0, 59, 86_399, 86_400, 951_782_399, 951_868_799, 951_868_800, 978_307_199,
                     4_107_542_399, 4_107_542_400, 4_110_047_999, 13_574_563_199]
        #expect(utcDateTime(secondsSinceEpoch: 951_868_799) == "2000-02-29T23:59:59")
        #expect(utcDateTime(secondsSinceEpoch: 4_107_542_400) == "2100-03-01T00:00:00")
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15  // xorshift: a fixed spread of instants
        let spread = (0..<20_000).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return Int(x % 13_574_563_200)
        }
        for t in fixed + spread {
            #expect(utcDateTime(secondsSinceEpoch: t) == reference(t), "t = \(t)")
        }
    }

    @Test func stateChangesAreWrittenAtOnceRequestLinesBatched() throws {
        let fds = try pipeWithNonBlockingReadEnd()
        defer { close(fds[0]); close(fds[1]) }
        let sink = LogSink(fd: fds[1], interval: .seconds(3600))
        let keeper = Logger(label: "spike-keeper") { LineLogHandler(label: $0, level: .info, batched: true, sink: sink) }
        let nexus = Logger(label: "spike-nexus") { LineLogHandler(label: $0, level: .info, batched: false, sink: sink) }
        keeper.info("POST /v1/store/shard 200")
        #expect(drain(fds[0]) == "", "a request line was written before a flush")
        nexus.info("step 12 operational")
        let both = drain(fds[0]).split(separator: "\n")
        #expect(both.count == 2 && both[0].hasSuffix("info spike-keeper: POST /v1/store/shard 200") && both[1].hasSuffix("info spike-nexus: step 12 operational"), "\(both)")
        keeper.info("POST /v1/store/shard 200")
        keeper.warning("keeper 2: unreachable")
        #expect(drain(fds[0]).split(separator: "\n").count == 2)
        keeper.info("listening")
        sink.flush()
        #expect(drain(fds[0]).hasSuffix("info spike-keeper: listening\n"))
    }

    /// The buffer keeps its reserved storage: an idle flush (the timer's usual
    /// tick) leaves it alone, and a flush that wrote lines gives it back.
    @Test func flushesKeepTheBuffersStorage() throws {
        let fds = try pipeWithNonBlockingReadEnd()
        defer { close(fds[0]); close(fds[1]) }
        let sink = LogSink(fd: fds[1], interval: .seconds(3600))
        let reserved = sink.bufferCapacity
        #expect(reserved >= 1 << 16)
        sink.flush()
        #expect(sink.bufferCapacity == reserved, "an idle flush dropped the buffer's storage")
        sink.append("step 12 operational\n", urgent: true)
        #expect(drain(fds[0]) == "step 12 operational\n")
        #expect(sink.bufferCapacity == reserved, "a flush did not give the storage back")
    }

    /// Flushes hand the buffer's storage out and back while other threads
    /// append and flush: no line may be lost, doubled, torn or reordered.
    @Test func concurrentLinesAreWrittenOnceEachInOrder() throws {
        let path = try temporaryDirectory("log").appendingPathComponent("log").path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let sink = LogSink(fd: fd, interval: .milliseconds(1))
        let threads = 4, lines = 2_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<lines { sink.append("thread \(t) line \(i)\n", urgent: i % 7 == 0) }
        }
        sink.flush()
        let written = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(written.count == threads * lines)
        var next = [Int](repeating: 0, count: threads)
        for line in written {
            let words = line.split(separator: " ")
            guard words.count == 4, let t = Int(words[1]), let i = Int(words[3]), (0..<threads).contains(t) else {
                Issue.record("torn line: \(line)"); return
            }
            #expect(i == next[t], "thread \(t): line \(i) where \(next[t]) was due")
            next[t] = i + 1
        }
    }
}
