import MutualTLS
import NIOConcurrencyHelpers

/// A loopback port nobody listens on, below Linux's ephemeral range (32768+,
/// where outgoing connections take theirs), never handed out twice in this
/// test process (all test targets share the ledger).
public func freePort() -> Int {
    while true {
        let port = Int.random(in: 20_000..<32_000)
        guard PortLedger.claim(port) else { continue }
        if Loopback.canBind(port: port) { return port }
    }
}

/// True when something accepts TCP connections on the loopback port.
public func portOpen(_ port: Int) -> Bool { Loopback.isListening(port: port) }

private enum PortLedger {
    static let taken = NIOLockedValueBox<Set<Int>>([])
    static func claim(_ port: Int) -> Bool { taken.withLockedValue { $0.insert(port).inserted } }
}
