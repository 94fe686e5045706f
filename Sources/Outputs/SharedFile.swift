import RouterCore
import RouterSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Size-based rotation settings for one path.
struct RotationPolicy: Equatable {
    /// Rotate before a write would take the file past this many bytes.
    var maxSize: Int
    /// Archives kept: path.1 (newest) ... path.N.
    var maxArchives: Int
}

/// A failed ``SharedFile/append(_:fsync:)``: why, and how many leading bytes of the call are written for good (into
/// a file rotated away before the failure); 0 when nothing of it stays.
struct AppendFailure: Error, CustomStringConvertible {
    var committedBytes: Int
    var message: String

    var description: String { message }
}

/// One open file shared by every output that names its path: one writer per path.
///
/// Writes happen under the file's lock, one write(2) per call, always of whole lines, and rotation happens between
/// writes under the same lock. So a `file` and a `rotating_file` on the same path never tear, lose or duplicate a
/// line, and rotation is coordinated between them.
final class SharedFile: @unchecked Sendable {
    // Safe to share: every mutable field is only touched with `lock` held.
    let path: String
    private let lock = Mutex(())
    private var descriptor: Int32 = -1
    private var size = 0
    private(set) var rotation: RotationPolicy?
    private var users = 0
    /// The stages that bring the rotation, by name, with how many instances of each (two during a replacement).
    private var rotators: [String: Int] = [:]
    private(set) var rotations = 0
    /// Partial last lines found when the file was opened (a crash during a write), closed with a newline.
    private var tornLinesClosed = 0
    /// How many of those an ``append(_:fsync:)`` has reported (the first open happens when the output is built).
    private var tornLinesReported = 0

    fileprivate init(path: String) {
        self.path = path
    }

    /// Opens the file (making its directory) if it is not open; throws with the system's reason.
    private func openIfNeeded() throws {
        guard descriptor < 0 else { return }
        try SharedFile.makeDirectories(for: path)
        let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard opened >= 0 else {
            throw StageError("cannot open '\(path)': \(FileDescriptorWriter.describe(errno))")
        }
        var status = stat()
        fstat(opened, &status)
        descriptor = opened
        size = Int(status.st_size)
        if size > 0 && (status.st_mode & S_IFMT) == S_IFREG && !endsWithNewline() {
            // The file ends in a partial line (a crash in the middle of a write): end it, so that the next entry
            // is not glued to it.
            var newline: UInt8 = 0x0A
            guard write(opened, &newline, 1) == 1 else {
                throw StageError("cannot write to '\(path)': \(FileDescriptorWriter.describe(errno))")
            }
            size += 1
            tornLinesClosed += 1
        }
    }

    /// Closes the file, so that the next write opens the path anew: after an external rotation (logrotate's
    /// `create`: the file was renamed and a new one is expected), entries go to the new file.
    func reopen() {
        lock.withLock { _ in
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
        }
    }

    /// Opens the file for appending if it is not open; throws with the system's reason. Something that is not a
    /// regular file (a FIFO, whose open waits for a reader; a device) is only checked for write access here and
    /// opened at the first write.
    func openNow() throws {
        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
            guard access(path, W_OK) == 0 else {
                throw StageError("cannot write '\(path)': \(FileDescriptorWriter.describe(errno))")
            }
            return
        }
        try lock.withLock { _ in try openIfNeeded() }
    }

    /// Whether the regular file at `path` ends in a newline (or cannot be read back, which is taken as yes).
    private func endsWithNewline() -> Bool {
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return true }
        defer { close(reader) }
        var last: UInt8 = 0x0A
        return pread(reader, &last, 1, off_t(size - 1)) != 1 || last == 0x0A
    }

    /// Writes whole lines (each ending in LF), rotating between lines when the policy says so.
    /// Returns the number of rotations done and of partial last lines that opening the file found and ended with a
    /// newline. Throws an ``AppendFailure`` when the file cannot be opened or written.
    ///
    /// A write that fails part way (a full disk) is undone: the file is cut back to where it ended before, so that
    /// no partial line stays and nothing counts twice. What went into an earlier file of the same call (before a
    /// rotation) stays written, and the failure says how many bytes that is (``AppendFailure/committedBytes``).
    func append(_ bytes: UnsafeRawBufferPointer, fsync sync: Bool) throws(AppendFailure) -> (
        rotations: Int, tornLinesClosed: Int
    ) {
        try lock.withLock { _ throws(AppendFailure) in
            do {
                try openIfNeeded()
            } catch {
                throw AppendFailure(committedBytes: 0, message: "\(error)")
            }
            let callStart = regularFileEnd()
            // The file's real size: another tool may have cut it (logrotate's `copytruncate`).
            if let callStart { size = callStart }
            var committed = 0
            var rotated = 0
            var offset = 0
            while offset < bytes.count {
                var end = bytes.count
                if let rotation, size + (end - offset) > rotation.maxSize {
                    // Take as many whole lines as fit; at least one line when the file is empty.
                    let room = rotation.maxSize - size
                    var cut = offset
                    var index = offset
                    while index < bytes.count {
                        if bytes[index] == 0x0A {
                            if index + 1 - offset > room { break }
                            cut = index + 1
                        }
                        index += 1
                    }
                    if cut == offset {
                        if size > 0 {
                            committed = offset
                            try rotate(rotation, committed: committed)
                            rotated += 1
                            continue
                        }
                        // A single line longer than max_size: write it whole, alone in its file.
                        cut = index < bytes.count ? index + 1 : bytes.count
                    }
                    end = cut
                }
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<end])
                // Where this chunk starts: `size` is the file's real size from here on (read above, kept since).
                let before = callStart == nil ? nil : size
                if let code = FileDescriptorWriter.writeAll(descriptor, chunk) {
                    cutBack(to: before)
                    rotations += rotated
                    throw AppendFailure(
                        committedBytes: committed,
                        message: "cannot write '\(path)': \(FileDescriptorWriter.describe(code))")
                }
                size += chunk.count
                offset = end
                if let rotation, size >= rotation.maxSize, offset < bytes.count {
                    committed = offset
                    try rotate(rotation, committed: committed)
                    rotated += 1
                }
            }
            if sync && fsync(descriptor) != 0 {
                let code = errno
                // Not known to be on disk: undo it (when it all went into this file) so that the retry writes it
                // once.
                if rotated == 0 { cutBack(to: callStart) }
                rotations += rotated
                throw AppendFailure(
                    committedBytes: rotated == 0 ? 0 : committed,
                    message: "cannot fsync '\(path)': \(FileDescriptorWriter.describe(code))")
            }
            rotations += rotated
            let torn = tornLinesClosed - tornLinesReported
            tornLinesReported = tornLinesClosed
            return (rotated, torn)
        }
    }

    private func rotate(_ rotation: RotationPolicy, committed: Int) throws(AppendFailure) {
        do {
            try rotateLocked(rotation)
        } catch {
            throw AppendFailure(committedBytes: committed, message: "\(error)")
        }
    }

    /// Where the open regular file ends, or nil for anything else (a device, a pipe), which cannot be cut back.
    private func regularFileEnd() -> Int? {
        var status = stat()
        guard descriptor >= 0, fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            return nil
        }
        return Int(status.st_size)
    }

    /// Undoes a write that failed part way: cuts the file back to `end` (what it held before).
    private func cutBack(to end: Int?) {
        guard let end, descriptor >= 0 else { return }
        if ftruncate(descriptor, off_t(end)) == 0 { size = end }
    }

    private func rotateLocked(_ rotation: RotationPolicy) throws {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        // Remove archives past the limit (also those left by an earlier, larger max_archives).
        var extra = rotation.maxArchives + 1
        while access("\(path).\(extra)", F_OK) == 0 {
            unlink("\(path).\(extra)")
            extra += 1
        }
        if rotation.maxArchives == 0 {
            unlink(path)
        } else {
            unlink("\(path).\(rotation.maxArchives)")
            var index = rotation.maxArchives - 1
            while index >= 1 {
                rename("\(path).\(index)", "\(path).\(index + 1)")
                index -= 1
            }
            if rename(path, "\(path).1") != 0 && errno != ENOENT {
                throw StageError("cannot rotate '\(path)': \(FileDescriptorWriter.describe(errno))")
            }
        }
        size = 0
        try openIfNeeded()
    }

    fileprivate func retain(rotation newRotation: RotationPolicy?, by stage: String) throws {
        try lock.withLock { _ in
            if let newRotation {
                // The replacement of a rotating_file (a reload that changed its max_size) brings its new rotation
                // while the one it replaces drains: only another stage's rotation conflicts.
                if let rotation, rotation != newRotation, rotators.keys.contains(where: { $0 != stage }) {
                    throw StageError(
                        "'\(path)' is also written by another rotating_file with max_size "
                            + "\(Units.formatSize(rotation.maxSize)) and max_archives \(rotation.maxArchives); "
                            + "outputs that share a path must rotate it the same way")
                }
                rotation = newRotation
                rotators[stage, default: 0] += 1
            }
            users += 1
        }
    }

    /// Drops one user (`rotating`: one that brought a rotation); the last one closes the file. Returns true when
    /// the file was closed.
    fileprivate func releaseUser(stage: String, rotating: Bool) -> Bool {
        lock.withLock { _ in
            if rotating {
                rotators[stage, default: 1] -= 1
                if rotators[stage] == 0 { rotators[stage] = nil }
                if rotators.isEmpty { rotation = nil }
            }
            users -= 1
            guard users == 0 else { return false }
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            return true
        }
    }

    /// Makes the directory that holds `path`, and its parents.
    static func makeDirectories(for path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var current = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw StageError("cannot create directory '\(current)': \(FileDescriptorWriter.describe(errno))")
            }
        }
    }
}

/// The process-wide table of shared files, by absolute path.
enum SharedFiles {
    private static let table = Mutex<[String: SharedFile]>([:])

    /// The shared file for `path`, registering one more user (and its rotation, if any).
    static func acquire(path: String, rotation: RotationPolicy?, stage: String) throws -> SharedFile {
        let key = absolute(path)
        let file = table.withLock { table in
            if let existing = table[key] { return existing }
            let created = SharedFile(path: path)
            table[key] = created
            return created
        }
        try file.retain(rotation: rotation, by: stage)
        // Open it now: a file that cannot be created or written (a read-only directory, a path under a regular
        // file) stops routerd from starting, with the reason, rather than failing the first write.
        do {
            try file.openNow()
        } catch {
            release(file, stage: stage, rotating: rotation != nil)
            throw error
        }
        return file
    }

    /// Drops one user of the file; the last one closes it.
    static func release(_ file: SharedFile, stage: String, rotating: Bool) {
        let key = absolute(file.path)
        table.withLock { table in
            if file.releaseUser(stage: stage, rotating: rotating) { table[key] = nil }
        }
    }

    private static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return normalize(path) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return normalize(cwd + "/" + path)
    }

    private static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
