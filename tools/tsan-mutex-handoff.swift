// Two threads append to one array under a lock; every access is inside the lock.
// Built by tools/tsan-mutex-check with -sanitize=thread, twice:
//   default:      Synchronization.Mutex
//   -D PTHREAD:   Foundation.NSLock (pthread_mutex, which TSan intercepts)
// On Linux a contended Mutex is handed over by the kernel (FUTEX_LOCK_PI /
// FUTEX_UNLOCK_PI inside the uninstrumented standard library), so TSan never sees
// the release/acquire pair and reports the protected accesses as a race.
import Foundation
#if !PTHREAD
import Synchronization
#endif

final class Shared: @unchecked Sendable {
    #if PTHREAD
    private let lock = NSLock()
    private var items: [Int] = []
    func update(_ body: (inout [Int]) -> Void) { lock.withLock { body(&items) } }
    #else
    private let items = Mutex<[Int]>([])
    func update(_ body: (inout [Int]) -> Void) { items.withLock { body(&$0) } }
    #endif
}

let shared = Shared()
let threads = (0..<2).map { t in
    Thread {
        for i in 0..<20_000 {
            shared.update { items in
                items.append(i &+ t)
                if items.count > 64 { items.removeFirst(32) }
            }
        }
    }
}
for thread in threads { thread.start() }
while threads.contains(where: { !$0.isFinished }) { usleep(1_000) }
print("finished")
