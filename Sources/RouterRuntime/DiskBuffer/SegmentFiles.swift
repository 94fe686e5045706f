package import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One step of a disk buffer that changes what is on disk, as a crash-point test names it.
package enum BufferStep: Sendable, Equatable, CustomStringConvertible {
    case create(String)
    case write(String, bytes: Int)
    case fsync(String)
    case rename(String)
    case unlink(String)
    case truncate(String)

    package var description: String {
        switch self {
        case .create(let file): "create \(file)"
        case .write(let file, let bytes): "write \(bytes) bytes to \(file)"
        case .fsync(let file): "fsync \(file)"
        case .rename(let file): "rename to \(file)"
        case .unlink(let file): "unlink \(file)"
        case .truncate(let file): "truncate \(file)"
        }
    }
}

/// What a crash-point hook makes of a step.
package enum StepFault: Sendable, Equatable {
    /// Do it.
    case proceed
    /// Crash before doing it.
    case crashBefore
    /// Crash after doing it.
    case crashAfter
    /// For a write: write only the first `bytes`, then crash (a torn write).
    case crashTorn(bytes: Int)
}

/// Thrown by a disk buffer whose crash-point hook asked for a crash: the buffer must not be used again, only its
/// directory opened anew.
package struct SimulatedCrash: Error, CustomStringConvertible {
    package var step: BufferStep
    package var description: String { "simulated crash at \(step)" }
}

/// A disk-buffer failure: what failed, on which file, and errno's words.
package struct BufferIOError: Error, CustomStringConvertible {
    package var operation: String
    package var path: String
    package var code: Int32

    package var description: String {
        "cannot \(operation) \(path): \(String(cString: strerror(code)))"
    }

    package var isNoSpace: Bool { code == ENOSPC || code == EDQUOT }
}

/// The file operations of a disk buffer, each reported to the crash-point hook first.
package struct BufferFiles: Sendable {
    package let directory: String
    package let hook: (@Sendable (BufferStep) -> StepFault)?

    package init(directory: String, hook: (@Sendable (BufferStep) -> StepFault)?) {
        self.directory = directory
        self.hook = hook
    }

    package func path(_ name: String) -> String { directory + "/" + name }

    private func ask(_ step: BufferStep) throws -> StepFault {
        guard let hook else { return .proceed }
        let fault = hook(step)
        if fault == .crashBefore { throw SimulatedCrash(step: step) }
        return fault
    }

    private func after(_ fault: StepFault, _ step: BufferStep) throws {
        if fault == .crashAfter { throw SimulatedCrash(step: step) }
    }

    /// Creates (or opens) `name` for appending and reading.
    package func create(_ name: String) throws -> Int32 {
        let step = BufferStep.create(name)
        let fault = try ask(step)
        let fd = Glibc.open(path(name), O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw BufferIOError(operation: "create", path: path(name), code: errno) }
        do { try after(fault, step) } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Writes all of `bytes` at `offset`.
    package func write(_ fd: Int32, _ name: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        let step = BufferStep.write(name, bytes: bytes.count)
        var fault = try ask(step)
        var length = bytes.count
        if case .crashTorn(let torn) = fault {
            length = max(0, min(torn, bytes.count))
            fault = .crashAfter
        }
        var done = 0
        guard let start = bytes.baseAddress else {
            try after(fault, step)
            return
        }
        while done < length {
            let result = pwrite(fd, start + done, length - done, off_t(offset + done))
            if result < 0 {
                if errno == EINTR { continue }
                throw BufferIOError(operation: "write to", path: path(name), code: errno)
            }
            done += result
        }
        try after(fault, step)
    }

    /// fdatasync (data and size; the name's metadata is the directory's fsync).
    package func sync(_ fd: Int32, _ name: String) throws {
        let step = BufferStep.fsync(name)
        let fault = try ask(step)
        guard fdatasync(fd) == 0 else { throw BufferIOError(operation: "fsync", path: path(name), code: errno) }
        try after(fault, step)
    }

    /// fsync of the directory, so that creations, renames and unlinks in it are durable.
    package func syncDirectory() throws {
        let step = BufferStep.fsync(".")
        let fault = try ask(step)
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BufferIOError(operation: "open", path: directory, code: errno) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw BufferIOError(operation: "fsync", path: directory, code: errno) }
        try after(fault, step)
    }

    /// Renames `from` to `to` in the directory.
    package func rename(_ from: String, to: String) throws {
        let step = BufferStep.rename(to)
        let fault = try ask(step)
        guard Glibc.rename(path(from), path(to)) == 0 else {
            throw BufferIOError(operation: "rename to", path: path(to), code: errno)
        }
        try after(fault, step)
    }

    /// Removes `name`; a file already gone is no error.
    package func unlink(_ name: String) throws {
        let step = BufferStep.unlink(name)
        let fault = try ask(step)
        guard Glibc.unlink(path(name)) == 0 || errno == ENOENT else {
            throw BufferIOError(operation: "remove", path: path(name), code: errno)
        }
        try after(fault, step)
    }

    /// Cuts `name` to `length` bytes.
    package func truncate(_ fd: Int32, _ name: String, to length: Int) throws {
        let step = BufferStep.truncate(name)
        let fault = try ask(step)
        guard ftruncate(fd, off_t(length)) == 0 else {
            throw BufferIOError(operation: "truncate", path: path(name), code: errno)
        }
        try after(fault, step)
    }

    /// Reads up to `count` bytes at `offset` into `buffer` (replacing its contents); fewer at the end of the file.
    package func read(_ fd: Int32, _ name: String, at offset: Int, count: Int, into buffer: inout [UInt8]) throws {
        guard count > 0 else {
            buffer.removeAll(keepingCapacity: true)
            return
        }
        var failure: Int32 = 0
        let got = [UInt8](unsafeUninitializedCapacity: count) { raw, initialized in
            var done = 0
            guard let start = raw.baseAddress else { return }
            while done < count {
                let result = pread(fd, start + done, count - done, off_t(offset + done))
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if result == 0 { break }
                done += result
            }
            initialized = done
        }
        guard failure == 0 else { throw BufferIOError(operation: "read", path: path(name), code: failure) }
        buffer = got
    }

    /// The names in the directory.
    package func list() throws -> [String] {
        guard let dir = opendir(directory) else {
            throw BufferIOError(operation: "list", path: directory, code: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The file's size.
    package static func size(_ fd: Int32) -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }
}

/// Makes `path` and its missing parents, as `mkdir -p` does.
package func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o750) != 0 && errno != EEXIST {
            throw BufferIOError(operation: "make directory", path: current, code: errno)
        }
    }
}

/// Reads a segment's records in order from a byte offset up to an end, checking each one's checksum and finding
/// the next good record after damage.
package struct SegmentScanner {
    package enum Item: Equatable {
        /// A record whose checksum holds; its bytes are ``record(_:)`` until the next call.
        case record(BufferRecord.Header)
        /// Bytes that hold no good record, followed by a good one (`resumed`).
        case damaged(bytes: Int, resumed: BufferRecord.Header)
        /// Bytes from `at` to the end that hold no good record: a torn write when at the end of the newest
        /// segment.
        case torn(at: Int, bytes: Int)
    }

    let fd: Int32
    let name: String
    let files: BufferFiles
    let end: Int
    /// The file offset after the last item.
    package private(set) var offset: Int
    private var buffer: [UInt8]
    private var bufferStart: Int
    private var recordStart = 0
    private static let chunk = 1 << 20

    package init(
        fd: Int32, name: String, files: BufferFiles, start: Int, end: Int, buffer: [UInt8] = [], bufferStart: Int = 0
    ) {
        self.fd = fd
        self.name = name
        self.files = files
        self.offset = start
        self.end = end
        self.buffer = buffer
        self.bufferStart = bufferStart
    }

    /// What is read ahead, to hand to the next scanner of the same file.
    package var remainingBuffer: ([UInt8], Int) { (buffer, bufferStart) }

    /// Makes the buffer hold `count` bytes at `position`; false when the file's end comes first.
    private mutating func ensure(_ position: Int, _ count: Int) throws -> Bool {
        guard position + count <= end else { return false }
        if position >= bufferStart && position + count <= bufferStart + buffer.count { return true }
        try files.read(
            fd, name, at: position, count: min(end - position, max(count, SegmentScanner.chunk)), into: &buffer)
        bufferStart = position
        return position + count <= bufferStart + buffer.count
    }

    /// The good record at `position`, if there is one.
    private mutating func record(at position: Int, maxPayload: Int) throws -> BufferRecord.Header? {
        guard try ensure(position, BufferRecord.headerSize) else { return nil }
        let at = position - bufferStart
        guard
            let header = buffer.withUnsafeBytes({
                BufferRecord.header(UnsafeRawBufferPointer(rebasing: $0[at...]), maxPayload: maxPayload)
            })
        else { return nil }
        guard try ensure(position, header.recordSize) else { return nil }
        let start = position - bufferStart
        let good = buffer.withUnsafeBytes {
            BufferRecord.verify(UnsafeRawBufferPointer(rebasing: $0[start...]), header: header)
        }
        return good ? header : nil
    }

    /// The next item, or nil at the end.
    package mutating func next(maxPayload: Int) throws -> Item? {
        guard offset < end else { return nil }
        if let header = try record(at: offset, maxPayload: maxPayload) {
            recordStart = offset
            offset += header.recordSize
            return .record(header)
        }
        var probe = offset + 1
        while probe + BufferRecord.headerSize <= end {
            guard try ensure(probe, BufferRecord.headerSize) else { break }
            // Look for the magic in what is loaded before checking a candidate in full.
            let from = probe - bufferStart
            let found = buffer.withUnsafeBytes { raw -> Int? in
                var index = from
                while index + 4 <= raw.count {
                    if raw.loadUnaligned(fromByteOffset: index, as: UInt32.self) == BufferRecord.magic.littleEndian {
                        return index
                    }
                    index += 1
                }
                return nil
            }
            guard let found else {
                probe = bufferStart + max(buffer.count - 3, from + 1)
                continue
            }
            probe = bufferStart + found
            if let header = try record(at: probe, maxPayload: maxPayload) {
                let skipped = probe - offset
                offset = probe
                return .damaged(bytes: skipped, resumed: header)
            }
            probe += 1
        }
        let torn = Item.torn(at: offset, bytes: end - offset)
        offset = end
        return torn
    }

    /// The bytes of the record ``next(maxPayload:)`` just returned, decoded.
    package func decodeRecord(_ header: BufferRecord.Header) -> Batch? {
        let start = recordStart - bufferStart
        guard start >= 0, start + header.recordSize <= buffer.count else { return nil }
        return buffer.withUnsafeBytes {
            BufferRecord.decode(UnsafeRawBufferPointer(rebasing: $0[start...]), header: header)
        }
    }
}
