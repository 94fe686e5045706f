import Foundation

/// A small tmpfs mounted for one test (a full or read-only filesystem, for real), unmounted when released.
///
/// Needs the right to mount (root in the test sandbox and in CI); ``isAvailable`` says whether it has it, for
/// `.enabled(if:)`.
final class Tmpfs {
    let url: URL

    /// Mounts a tmpfs of `sizeBytes` at a new directory under `parent`; `readOnly` mounts it read-only.
    init(under parent: URL, sizeBytes: Int, readOnly: Bool = false) throws {
        url = parent.appendingPathComponent("tmpfs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let options = "size=\(sizeBytes)" + (readOnly ? ",ro" : "")
        let result = try Spawn.run("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", url.path])
        guard result.status == 0 else { throw TestFailure("mount tmpfs at \(url.path): \(result.output)") }
    }

    /// Fills the filesystem with `filler` (written until the disk is full, then cut back by `leaving` bytes, so
    /// that about that much room is left) and returns its path.
    @discardableResult
    func fill(named filler: String = "filler", leaving: Int = 0) throws -> URL {
        let path = url.appendingPathComponent(filler)
        let descriptor = open(path.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw TestFailure("cannot create \(path.path)") }
        defer { close(descriptor) }
        let block = [UInt8](repeating: 0x2E, count: 4096)
        while true {
            let written = block.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written <= 0 { break }
        }
        // Single bytes, so that not even a small line fits any more.
        var byte: UInt8 = 0x2E
        while write(descriptor, &byte, 1) == 1 {}
        if leaving > 0 {
            var status = stat()
            fstat(descriptor, &status)
            ftruncate(descriptor, max(0, status.st_size - off_t(leaving)))
        }
        return path
    }

    deinit {
        _ = try? Spawn.run("/bin/umount", ["-l", url.path])
        try? FileManager.default.removeItem(at: url)
    }

    /// Whether this process may mount a tmpfs (checked once, by mounting one).
    static let isAvailable: Bool = {
        guard let probe = try? Tmpfs(under: URL(fileURLWithPath: NSTemporaryDirectory()), sizeBytes: 4096) else {
            return false
        }
        _ = probe
        return true
    }()
}
