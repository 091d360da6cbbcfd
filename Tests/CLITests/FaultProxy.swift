import Foundation
import NIOConcurrencyHelpers
import TestSupport

/// A loopback TCP proxy in front of one keeper that injects network faults
/// below TLS (so the mTLS between Nexus and keeper stays end to end). Runs on
/// its own threads with blocking sockets: nothing here touches Swift's
/// cooperative pool.
final class FaultProxy: @unchecked Sendable {
    enum Mode: Equatable {
        /// Forward both ways.
        case pass
        /// Accept, wait this long, then connect upstream: every answer arrives that much later.
        case delay(TimeInterval)
        /// Accept and read, never answer (a host that swallows traffic).
        case blackhole
        /// Forward the handshake, then half of the keeper's first reply bytes, then RST.
        case resetMidResponse
        /// Forward this many more connections, then blackhole every later one.
        case passNext(Int)
    }

    let port: Int
    let upstreamPort: Int
    private let listener: Int32
    private let state = NIOLockedValueBox<(mode: Mode, open: Set<Int32>, stopped: Bool)>((.pass, [], false))

    var mode: Mode {
        get { state.withLockedValue { $0.mode } }
        set { state.withLockedValue { $0.mode = newValue } }
    }

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw CocoaError(.fileWriteUnknown)
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    /// Stops accepting and ends every connection. Idempotent. Descriptors are
    /// only ever touched while this proxy still owns them: a second close, or a
    /// shutdown after another thread closed one, would hit whatever the process
    /// opened next under that number (another test's NIO socket).
    func stop() {
        state.withLockedValue { s in
            guard !s.stopped else { return }
            s.stopped = true
            // Wakes the accept loop, which closes the listener itself when it leaves.
            shutdown(listener, Int32(SHUT_RDWR))
            // Under the lock: `finish` cannot close one of these meanwhile.
            for fd in s.open { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    /// Adopts `fd` unless the proxy has stopped (then the caller closes it).
    private func track(_ fd: Int32) -> Bool {
        state.withLockedValue { s in
            guard !s.stopped else { return false }
            s.open.insert(fd)
            return true
        }
    }
    private func finish(_ fd: Int32, reset: Bool = false) {
        let mine = state.withLockedValue { $0.open.remove(fd) != nil }
        guard mine else { return }
        if reset {
            // SO_LINGER 0: close sends RST instead of FIN.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func acceptLoop() {
        defer { close(listener) }  // only here, once nothing can accept on it any more
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if state.withLockedValue({ $0.stopped }) { return }
                continue
            }
            // A connection accepted as `stop` ran is not served.
            let kept = state.withLockedValue { s -> Bool in
                guard !s.stopped else { return false }
                s.open.insert(client)
                return true
            }
            guard kept else {
                close(client)
                return
            }
            // A countdown is taken per connection, under the lock.
            let mode = state.withLockedValue { s -> Mode in
                guard case .passNext(let n) = s.mode else { return s.mode }
                s.mode = n > 1 ? .passNext(n - 1) : .blackhole
                return n > 0 ? .pass : .blackhole
            }
            Thread { [self] in serve(client, mode: mode) }.start()
        }
    }

    private func serve(_ client: Int32, mode: Mode) {
        switch mode {
        case .blackhole:
            drain(client)
            finish(client)
            return
        case .delay(let seconds):
            Thread.sleep(forTimeInterval: seconds)
        case .pass, .resetMidResponse, .passNext:
            break
        }
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = Self.loopback(port: upstreamPort)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(upstream)
            finish(client, reset: true)
            return
        }
        guard track(upstream) else {  // stopped meanwhile
            close(upstream)
            finish(client)
            return
        }
        let clientChunks = Counter()
        let clientSideDone = DispatchSemaphore(value: 0)
        // Neither thread closes a descriptor the other may still read: each
        // direction only shuts its side down; both are closed once both end.
        Thread { [self] in
            pump(from: client, to: upstream) { _ in clientChunks.bump(); return .forward }
            shutdown(upstream, Int32(SHUT_WR))  // the keeper sees the client's end
            clientSideDone.signal()
        }.start()
        var cut = false
        pump(from: upstream, to: client) { count in
            // After the client's second flight (its certificate and Finished),
            // what the keeper sends is its reply.
            guard mode == .resetMidResponse, clientChunks.value >= 2 else { return .forward }
            cut = true
            return .forwardPrefixThenStop(max(1, count / 2))
        }
        shutdown(client, Int32(SHUT_RD))  // wakes the other direction's read without sending anything
        clientSideDone.wait()
        finish(client, reset: cut)
        finish(upstream, reset: cut)
    }

    enum Verdict { case forward, forwardPrefixThenStop(Int) }

    private func pump(from: Int32, to: Int32, _ decide: (Int) -> Verdict) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            switch decide(n) {
            case .forward:
                guard writeAll(to, buffer, n) else { return }
            case .forwardPrefixThenStop(let k):
                _ = writeAll(to, buffer, k)
                return
            }
        }
    }

    private func writeAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var done = 0
        while done < count {
            let w = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + done, count - done) }
            if w <= 0 { return false }
            done += w
        }
        return true
    }

    private func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}
