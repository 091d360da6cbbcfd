import NIOConcurrencyHelpers

/// A count shared between a test and the callbacks it installs.
public final class Counter: Sendable {
    private let n = NIOLockedValueBox(0)

    public init() {}

    public func bump() { n.withLockedValue { $0 += 1 } }
    public var value: Int { n.withLockedValue { $0 } }
}
