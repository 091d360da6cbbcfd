import Foundation
import SecureMemory

/// Writing and reading the files that hold secrets (Pilot shard files, root-key files).
public enum SecretFiles {
    /// Writes `bytes` to `path` with mode 0600, atomically (temp file + rename), never partially.
    public static func write(_ bytes: [UInt8], to path: String) throws(BreakGlassError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temp = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).\(UUID().uuidString).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw BreakGlassError("\(path): cannot create (\(String(cString: strerror(errno))))") }
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temp, path) == 0 else {
            unlink(temp)
            throw BreakGlassError("\(path): cannot write (\(String(cString: strerror(errno))))")
        }
    }

    /// Reads a small file; errors name the file.
    public static func read(_ path: String, limit: Int = 4096) throws(BreakGlassError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw BreakGlassError("\(path): no such file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BreakGlassError("\(path): cannot read (permission denied?)") }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        guard data.count <= limit else { throw BreakGlassError("\(path): larger than \(limit) bytes; not a key or shard file") }
        return [UInt8](data)
    }
}
