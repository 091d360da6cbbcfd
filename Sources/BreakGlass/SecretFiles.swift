import Foundation
import SecureMemory

/// Writing and reading the files that hold secrets (Pilot shard files, root-key files).
public enum SecretFiles {
    /// Writes `bytes` to `path` with mode 0600, atomically (temp file, then
    /// link or rename), never partially. An existing `path` is refused unless
    /// `replacing`: a break-glass file is never lost to a mistyped `--out`.
    public static func write(_ bytes: [UInt8], to path: String, replacing: Bool = false) throws(BreakGlassError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temp = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).\(UUID().uuidString).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw BreakGlassError("\(path): cannot create (\(String(cString: strerror(errno))))") }
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temp)
            throw BreakGlassError("\(path): cannot write (\(String(cString: strerror(errno))))")
        }
        // link(2) fails with EEXIST instead of replacing: no window between a check and the write.
        let placed = replacing ? rename(temp, path) : link(temp, path)
        let problem = errno
        if !replacing || placed != 0 { unlink(temp) }
        guard placed == 0 else {
            if problem == EEXIST { throw existing(path) }
            throw BreakGlassError("\(path): cannot write (\(String(cString: strerror(problem))))")
        }
    }

    /// Refuses before anything is written when one of `paths` exists (and `replacing` is off).
    public static func refuseExisting(_ paths: [String], replacing: Bool) throws(BreakGlassError) {
        guard !replacing else { return }
        var status = stat()
        for path in paths where lstat(path, &status) == 0 { throw existing(path) }
    }

    static func existing(_ path: String) -> BreakGlassError {
        BreakGlassError("\(path): already exists; pass --force to replace it", kind: .badInput)
    }

    /// Reads a small file; errors name the file. A file that group or others
    /// may read gets one warning through `warn` (it is still read: refusing
    /// would only delay a recovery already under way).
    public static func read(_ path: String, limit: Int = 4096, warn: (String) -> Void = { _ in }) throws(BreakGlassError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw BreakGlassError("\(path): no such file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BreakGlassError("\(path): cannot read (permission denied?)") }
        defer { try? handle.close() }
        var status = stat()
        if fstat(handle.fileDescriptor, &status) == 0, status.st_mode & (S_IRGRP | S_IROTH) != 0 {
            warn("warning: \(path) is readable by group or others (mode \(String(status.st_mode & 0o777, radix: 8))); keep key and shard files at 0600")
        }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        guard data.count <= limit else { throw BreakGlassError("\(path): larger than \(limit) bytes; not a key or shard file") }
        return [UInt8](data)
    }
}
