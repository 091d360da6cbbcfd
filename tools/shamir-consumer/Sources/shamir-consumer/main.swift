import Glibc
import Shamir

// Split a fresh key 3-of-5, recover it from shards 5, 2 and 4, and check
// that a wrong subset size is refused. Exit 1 on any mismatch.
let shamir = NativeShamir()
let key = NativeShamir.randomRootKey()
let split = try shamir.split(rootKey: key, threshold: 3, shares: 5)
let chosen = [split.shards[4], split.shards[1], split.shards[3]]
let back = try shamir.recover(threshold: 3, shards: chosen)
guard back.constantTimeEquals(key) else {
    print("shamir-consumer: the recovered key differs")
    exit(1)
}
do {
    _ = try shamir.recover(threshold: 3, shards: Array(chosen.prefix(2)))
    print("shamir-consumer: two shards of a 3-of-5 split were accepted")
    exit(1)
} catch {
    print("shamir-consumer: split 3-of-5 and recovered from shards 5, 2, 4; two shards refused (\(error))")
}
