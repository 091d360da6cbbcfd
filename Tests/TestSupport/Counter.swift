import Foundation

/// A count shared between a test and the callbacks it installs.
public final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0

    public init() {}

    public func bump() { lock.withLock { n += 1 } }
    public var value: Int { lock.withLock { n } }
}
