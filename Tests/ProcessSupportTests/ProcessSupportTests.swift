import Glibc
import Logging
import ProcessSupport
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
