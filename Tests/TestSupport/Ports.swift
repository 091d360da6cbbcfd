import Foundation

/// A loopback port nobody listens on, below Linux's ephemeral range (32768+,
/// where outgoing connections take theirs), never handed out twice in this
/// test process (all test targets share the ledger).
public func freePort() -> Int {
    while true {
        let port = Int.random(in: 20_000..<32_000)
        guard PortLedger.claim(port) else { continue }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = loopback(port)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        close(fd)
        if ok { return port }
    }
}

/// True when something accepts TCP connections on the loopback port.
public func portOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = loopback(port)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

private func loopback(_ port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

private enum PortLedger {
    nonisolated(unsafe) static var taken: Set<Int> = []
    static let lock = NSLock()
    static func claim(_ port: Int) -> Bool { lock.withLock { taken.insert(port).inserted } }
}
