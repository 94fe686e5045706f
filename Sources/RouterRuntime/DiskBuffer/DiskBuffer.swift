import CRouterShims
package import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A disk buffer: an output's accepted entries in checksummed segment files, delivered in order, forgotten only
/// once the output settled them, kept across crashes and restarts.
///
/// Layout of the directory:
/// - `<first record id, 20 digits>.seg`: a 16-byte segment header, then records (``BufferRecord``) back to back.
///   Appends go to the newest segment; a new one starts past the segment size (an eighth of `max_size`, 64 KiB to
///   128 MiB), and at every open.
/// - `ledger`: two 64-byte slots written in turn (a sequence number and a checksum each), so that a torn ledger
///   write leaves the other slot: the id below which every record was settled, and how far the output had been
///   handed records when it was written. Written at each checkpoint (every `sync` interval, at least every
///   100 ms, while settlements come in) and at close.
/// - `lock`: held with `flock` while a routerd uses the buffer.
///
/// Order of the steps that matter, so that a crash between any two of them loses nothing that was synced and
/// repeats only what the ledger did not cover yet:
/// 1. an append writes a record, then (per `sync`) fdatasyncs the segment; only then do the entries' senders
///    hear (with `acknowledge: when_buffered`);
/// 2. a checkpoint writes the ledger slot and fdatasyncs it, and only then unlinks segments whose every record is
///    below the ledger's mark, then fsyncs the directory. A crash after the ledger and before an unlink leaves a
///    segment that the next open deletes; a crash before the ledger leaves records that are delivered again.
///
/// At open, every segment is read and checked: a record whose checksum fails at the end of the newest segment
/// is a torn write (cut off, counted); damage followed by good records is skipped up to the next good record
/// (counted, with the number of entries lost, which the records' event numbers give). Neither stops the open.
package final class DiskBuffer: DiskBufferReporting, @unchecked Sendable {
    // Safe to share: every mutable field is touched with `lock` held, except the files of the appender (only the
    // appending thread) and of the reader (only the reading thread), and the checkpoint (serialized by its own
    // flag, taken under the lock).

    package struct Segment: Sendable {
        package let firstID: UInt64
        package var name: String { DiskBuffer.segmentName(firstID) }
        /// Bytes in the file that hold whole records (and the header).
        package var size: Int
        package var records = 0
        package var events = 0
        package var lastID: UInt64?
        package var firstReceivedNanos: Int64 = 0
        package var lastReceivedNanos: Int64 = 0
    }

    package typealias Damage = DiskBufferReport.Damage

    package static let segmentHeaderSize = 16
    static let segmentMagic: [UInt8] = Array("RDBSEG01".utf8) + [1, 0, 0, 0, 0, 0, 0, 0]
    static let ledgerName = "ledger"
    static let slotSize = 64

    package let directory: String
    package let settings: BufferSettings
    package let segmentSize: Int
    let files: BufferFiles
    private let lock = ConditionLock(conditions: 2)
    private static let readerCondition = 0
    private static let spaceCondition = 1
    private var lockFD: Int32 = -1

    // MARK: State (under `lock`)

    private var segments: [Segment] = []
    private var nextID: UInt64 = 0
    private var nextEvent: UInt64 = 0
    /// Every record below this id is settled.
    private var settledThrough: UInt64 = 0
    /// Settled ranges of ids above ``settledThrough``, by their first id.
    private var settledRanges: [UInt64: UInt64] = [:]
    /// The event number the reader expects next (nil before its first record).
    private var readEventNumber: UInt64?
    /// Segments below this id existed at the open, whose damage the open has counted already.
    private var firstSegmentOfThisRun: UInt64 = 0
    /// The next record id the reader hands out.
    private var readID: UInt64 = 0
    /// Entries appended and not settled (what the buffer holds for the output).
    private var unsettledEvents = 0
    /// Entries appended and not handed out yet.
    private var unreadEvents = 0
    /// Records handed out and not settled: their receive times, for the oldest entry's age.
    private var outstanding: [UInt64: Int64] = [:]
    private var hot: [HotRecord] = []
    private var hotHead = 0
    private var hotBytes = 0
    private let hotLimit: Int
    private var inputClosed = false
    private var closeDeadline: Int64 = .max
    private var readerWaiting = false
    private var readerThreshold = 1
    private var ledgerSequence: UInt64 = 0
    private var ledgerSettled: UInt64 = 0
    /// Serializes ledger writes (checkpoints on the appender's thread, reservations on the reader's).
    private let ledgerLock = ConditionLock()
    /// The ledger's hand-out mark: records below it may have been handed out.
    private var reservedThrough: UInt64 = 0
    /// How far ahead of the reader a reservation reaches.
    static let reservation: UInt64 = 4096
    private var damage = Damage()
    private var replayedEvents = 0
    private var droppedFull = 0
    private var full = false
    private var failed: String?
    /// `acknowledge: when_written`: the trackers of appended batches, by record id, until the output settles them.
    private var upstream: [UInt64: [DeliveryTracker]] = [:]

    // MARK: Appender (its thread only)

    private var activeFD: Int32 = -1
    private var activeIsNew = false
    private var scratch: [UInt8] = []

    // MARK: Reader (its thread only)

    private var readFD: Int32 = -1
    private var readSegment: UInt64?
    private var readOffset = 0
    private var readBuffer: [UInt8] = []
    private var readBufferStart = 0

    private struct HotRecord {
        var id: UInt64
        var batch: Batch
        var segment: UInt64
        var end: Int
        var bytes: Int
        var firstEvent: UInt64
    }

    /// Opens (making it if needed) the buffer in `directory`: takes its lock, reads the ledger, checks every
    /// segment, cuts torn tails, deletes what was settled, and starts a new segment for appends.
    package init(
        directory: String, settings: BufferSettings, hotLimit: Int = 8 << 20, readOnly: Bool = false,
        hook: (@Sendable (BufferStep) -> StepFault)? = nil
    ) throws {
        self.directory = directory
        self.settings = settings
        self.hotLimit = hotLimit
        segmentSize = min(128 << 20, max(64 << 10, settings.maxSize / 8))
        files = BufferFiles(directory: directory, hook: hook)
        if !readOnly {
            try makeDirectories(directory)
            try takeLock()
        } else {
            var info = stat()
            guard stat(directory, &info) == 0 else {
                throw BufferIOError(operation: "open", path: directory, code: errno)
            }
        }
        try recover(readOnly: readOnly)
        firstSegmentOfThisRun = nextID
        if !readOnly { try startSegment() }
    }

    deinit {
        if activeFD >= 0 { Glibc.close(activeFD) }
        if readFD >= 0 { Glibc.close(readFD) }
        if lockFD >= 0 { Glibc.close(lockFD) }
    }

    static func segmentName(_ id: UInt64) -> String {
        let digits = String(id)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    /// The pid of the routerd that holds the buffer's lock, or nil when none does.
    package static func lockHolder(directory: String) -> String? {
        let fd = Glibc.open(directory + "/lock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) != 0 else {
            flock(fd, LOCK_UN)
            return nil
        }
        var owner = [UInt8](repeating: 0, count: 32)
        let got = pread(fd, &owner, 31, 0)
        return got > 0 ? String(decoding: owner[0..<got], as: UTF8.self).trimmingSpaces : "?"
    }

    private func takeLock() throws {
        let path = files.path("lock")
        lockFD = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard lockFD >= 0 else { throw BufferIOError(operation: "open", path: path, code: errno) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var owner = [UInt8](repeating: 0, count: 32)
            let got = pread(lockFD, &owner, 31, 0)
            let pid = got > 0 ? String(decoding: owner[0..<got], as: UTF8.self).trimmingSpaces : "?"
            Glibc.close(lockFD)
            lockFD = -1
            if code == EWOULDBLOCK {
                throw BufferIOError.inUse(path: directory, pid: pid)
            }
            throw BufferIOError(operation: "lock", path: path, code: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(lockFD, 0)
        _ = pid.withUnsafeBytes { pwrite(lockFD, $0.baseAddress, $0.count, 0) }
    }

    // MARK: Recovery

    private func recover(readOnly: Bool) throws {
        let ledger = try readLedger()
        settledThrough = ledger?.settled ?? 0
        ledgerSettled = settledThrough
        ledgerSequence = ledger?.sequence ?? 0
        reservedThrough = max(ledger?.handedOut ?? 0, settledThrough)
        let handedOut = ledger?.handedOut ?? settledThrough
        let names = try files.list().filter { $0.hasSuffix(".seg") }.compactMap { name -> UInt64? in
            guard name.count == 24, let id = UInt64(name.prefix(20)) else { return nil }
            return id
        }.sorted()
        var lastEventEnd: UInt64?
        var found: [Segment] = []
        var stale: [UInt64] = []
        for (position, id) in names.enumerated() {
            let name = DiskBuffer.segmentName(id)
            let fd = Glibc.open(files.path(name), (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
            guard fd >= 0 else { throw BufferIOError(operation: "open", path: files.path(name), code: errno) }
            defer { Glibc.close(fd) }
            var segment = Segment(firstID: id, size: DiskBuffer.segmentHeaderSize)
            let fileSize = BufferFiles.size(fd)
            var scanner = SegmentScanner(
                fd: fd, name: name, files: files, start: DiskBuffer.segmentHeaderSize, end: fileSize)
            let isNewest = position == names.count - 1
            while let item = try scanner.next(maxPayload: max(segmentSize, 64 << 20)) {
                switch item {
                case .record(let header):
                    // A gap in the event numbers between segments: records lost with damage at the end of the
                    // previous segment, or a segment removed by hand.
                    if segment.records == 0, let end = lastEventEnd, header.firstEvent > end,
                        header.id >= settledThrough
                    {
                        damage.lostEvents += Int(header.firstEvent - end)
                    }
                    if segment.records == 0 { segment.firstReceivedNanos = header.receivedAtNanos }
                    segment.records += 1
                    segment.events += header.eventCount
                    segment.lastID = header.id
                    segment.lastReceivedNanos = header.receivedAtNanos
                    segment.size = scanner.offset
                    lastEventEnd = header.firstEvent + UInt64(header.eventCount)
                    nextID = max(nextID, header.id + 1)
                    nextEvent = max(nextEvent, header.firstEvent + UInt64(header.eventCount))
                    if header.id >= settledThrough {
                        unsettledEvents += header.eventCount
                        if header.id < handedOut { replayedEvents += header.eventCount }
                    }
                case .damaged(let bytes, let resumed):
                    damage.skippedRecords += 1
                    damage.skippedBytes += bytes
                    if let end = lastEventEnd, resumed.firstEvent > end, resumed.id >= settledThrough {
                        damage.lostEvents += Int(resumed.firstEvent - end)
                    }
                case .torn(let at, let bytes):
                    if isNewest {
                        damage.cutRecords += 1
                        damage.cutBytes += bytes
                        if !readOnly { try files.truncate(fd, name, to: at) }
                    } else {
                        damage.skippedRecords += 1
                        damage.skippedBytes += bytes
                    }
                }
            }
            if segment.lastID.map({ $0 < settledThrough }) ?? true {
                stale.append(id)
            } else {
                found.append(segment)
            }
        }
        nextID = max(nextID, settledThrough)
        segments = found
        readID = settledThrough
        unreadEvents = unsettledEvents
        if !readOnly && !stale.isEmpty {
            for id in stale { try files.unlink(DiskBuffer.segmentName(id)) }
            try files.syncDirectory()
        }
    }

    // MARK: Ledger

    private struct Ledger {
        var sequence: UInt64
        var settled: UInt64
        var handedOut: UInt64
    }

    private func readLedger() throws -> Ledger? {
        let fd = Glibc.open(files.path(DiskBuffer.ledgerName), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw BufferIOError(operation: "open", path: files.path(DiskBuffer.ledgerName), code: errno)
        }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        try files.read(fd, DiskBuffer.ledgerName, at: 0, count: 2 * DiskBuffer.slotSize, into: &bytes)
        var best: Ledger?
        for slot in 0..<2 where bytes.count >= (slot + 1) * DiskBuffer.slotSize {
            let ledger = bytes.withUnsafeBytes { raw -> Ledger? in
                guard let start = raw.baseAddress else { return nil }
                let base = start + slot * DiskBuffer.slotSize
                guard base.loadUnaligned(as: UInt64.self) == UInt64(0x3152_4547_4445_4C52).littleEndian else {
                    return nil
                }
                let crc = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: UInt32.self))
                guard crc == routerdChecksum(base, 32) else { return nil }
                return Ledger(
                    sequence: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                    settled: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                    handedOut: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
            }
            if let ledger, ledger.sequence >= (best?.sequence ?? 0) { best = ledger }
        }
        return best
    }

    /// Writes the ledger's older slot and syncs it.
    private func writeLedger(settled: UInt64, handedOut: UInt64, sequence: UInt64) throws {
        var slot = [UInt8](repeating: 0, count: DiskBuffer.slotSize)
        slot.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            base.storeBytes(of: UInt64(0x3152_4547_4445_4C52).littleEndian, toByteOffset: 0, as: UInt64.self)
            base.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
            base.storeBytes(of: settled.littleEndian, toByteOffset: 16, as: UInt64.self)
            base.storeBytes(of: handedOut.littleEndian, toByteOffset: 24, as: UInt64.self)
            base.storeBytes(of: routerdChecksum(base, 32).littleEndian, toByteOffset: 32, as: UInt32.self)
        }
        let existed = access(files.path(DiskBuffer.ledgerName), F_OK) == 0
        let fd = try files.create(DiskBuffer.ledgerName)
        defer { Glibc.close(fd) }
        try slot.withUnsafeBytes {
            try files.write(fd, DiskBuffer.ledgerName, $0, at: Int(sequence % 2) * DiskBuffer.slotSize)
        }
        try files.sync(fd, DiskBuffer.ledgerName)
        if !existed { try files.syncDirectory() }
    }

    // MARK: Appending (the appender's thread)

    private func startSegment() throws {
        if activeFD >= 0 {
            Glibc.close(activeFD)
            activeFD = -1
        }
        let id = lock.withLock { nextID }
        let name = DiskBuffer.segmentName(id)
        let fd = try files.create(name)
        do {
            try files.truncate(fd, name, to: 0)
            try DiskBuffer.segmentMagic.withUnsafeBytes { try files.write(fd, name, $0, at: 0) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        activeFD = fd
        activeIsNew = true
        lock.withLock {
            if let last = segments.last, last.firstID == id {
                segments[segments.count - 1] = Segment(firstID: id, size: DiskBuffer.segmentHeaderSize)
            } else {
                segments.append(Segment(firstID: id, size: DiskBuffer.segmentHeaderSize))
            }
        }
    }

    /// What ``append(_:)`` did.
    package enum AppendResult: Equatable {
        /// Written (not yet synced).
        case appended
        /// No room: `max_size` reached or the disk is full (the text says which).
        case full(String)
    }

    /// Appends `batches` as one write, each batch a record. Nothing is written when it does not fit.
    ///
    /// With `acknowledge: when_written`, the batches' trackers are kept and settled when the output settles
    /// their records; otherwise the caller settles them once the append is synced.
    package func append(_ batches: [Batch]) throws -> AppendResult {
        let (id, event, bytesNow) = lock.withLock { (nextID, nextEvent, totalBytes) }
        scratch.removeAll(keepingCapacity: true)
        var ends: [Int] = []
        var firstEvents: [UInt64] = []
        var nextRecord = id
        var nextEventNumber = event
        for batch in batches where !batch.isEmpty {
            BufferRecord.encode(batch, id: nextRecord, firstEvent: nextEventNumber, into: &scratch)
            ends.append(scratch.count)
            firstEvents.append(nextEventNumber)
            nextRecord += 1
            nextEventNumber += UInt64(batch.count)
        }
        guard !ends.isEmpty else { return .appended }
        if bytesNow + scratch.count > settings.maxSize && bytesNow > DiskBuffer.segmentHeaderSize {
            lock.withLock { full = true }
            return .full("max_size \(Units.formatSize(settings.maxSize)) reached")
        }
        var active = lock.withLock { segments[segments.count - 1] }
        if active.size > DiskBuffer.segmentHeaderSize && active.size + scratch.count > segmentSize {
            try startSegment()
            active = lock.withLock { segments[segments.count - 1] }
        }
        let offset = active.size
        do {
            try scratch.withUnsafeBytes { try files.write(activeFD, active.name, $0, at: offset) }
        } catch let error as BufferIOError where error.isNoSpace {
            // Nothing half-written stays behind: the next append starts where this one did.
            _ = ftruncate(activeFD, off_t(offset))
            lock.withLock { full = true }
            return .full("the disk is full (\(error))")
        }
        lock.lock()
        full = false
        var start = 0
        for (index, batch) in batches.filter({ !$0.isEmpty }).enumerated() {
            let recordID = id + UInt64(index)
            var segment = segments[segments.count - 1]
            if segment.records == 0 { segment.firstReceivedNanos = batch.receivedAtNanos }
            segment.records += 1
            segment.events += batch.count
            segment.lastID = recordID
            segment.lastReceivedNanos = batch.receivedAtNanos
            segment.size = offset + ends[index]
            segments[segments.count - 1] = segment
            let size = ends[index] - start
            start = ends[index]
            if settings.acknowledge == .whenWritten && !batch.trackers.isEmpty { upstream[recordID] = batch.trackers }
            let contiguous = hotHead == hot.count || hot[hot.count - 1].id + 1 == recordID
            if contiguous && hotBytes + size <= hotLimit {
                var copy = batch
                copy.trackers = []
                copy.replyChannel = nil
                hot.append(
                    HotRecord(
                        id: recordID, batch: copy, segment: segment.firstID, end: segment.size, bytes: size,
                        firstEvent: firstEvents[index]))
                hotBytes += size
            }
        }
        nextID = nextRecord
        nextEvent = nextEventNumber
        let appended = Int(nextEventNumber - event)
        unsettledEvents += appended
        unreadEvents += appended
        let wake = readerWaiting && unreadEvents >= readerThreshold
        if wake { readerWaiting = false }
        lock.unlock()
        if wake { lock.signal(DiskBuffer.readerCondition) }
        return .appended
    }

    /// Makes what was appended durable (and a new segment's name, with the directory).
    package func sync() throws {
        guard activeFD >= 0 else { return }
        let name = lock.withLock { segments[segments.count - 1].name }
        try files.sync(activeFD, name)
        if activeIsNew {
            try files.syncDirectory()
            activeIsNew = false
        }
    }

    /// Waits (up to the monotonic deadline) until settlements may have made room; returns at once when the
    /// buffer is closing.
    package func waitForRoom(deadlineNanos: Int64) {
        lock.lock()
        defer { lock.unlock() }
        if full { _ = lock.wait(DiskBuffer.spaceCondition, untilMonotonicNanos: deadlineNanos) }
    }

    /// Counts entries dropped because the buffer was full.
    package func countDroppedFull(_ events: Int) {
        lock.withLock { droppedFull += events }
    }

    /// No more appends: the reader hands out what is left, until `drainNanos` from now, then says closed.
    package func closeInput(drainNanos: Int64) {
        lock.withLock {
            inputClosed = true
            closeDeadline = monotonicNanos() &+ drainNanos
            readerWaiting = false
            lock.broadcast(DiskBuffer.readerCondition)
        }
    }

    /// Whether ``closeInput(drainNanos:)`` was called.
    package var isInputClosed: Bool { lock.withLock { inputClosed } }

    /// Waits until the input is closed or the monotonic deadline passes; returns whether it is closed.
    package func waitUntilClosed(deadlineNanos: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while !inputClosed {
            if !lock.wait(DiskBuffer.readerCondition, untilMonotonicNanos: deadlineNanos)
                && monotonicNanos() >= deadlineNanos
            {
                break
            }
        }
        return inputClosed
    }

    /// Why the buffer stopped working, if it did.
    package var failure: String? { lock.withLock { failed } }

    // MARK: Settling and checkpoints

    private func settle(id: UInt64, events: Int, outcome: DeliveryOutcome) {
        lock.lock()
        outstanding[id] = nil
        if let trackers = upstream.removeValue(forKey: id) {
            let result: WriteResult
            if case .failed(let reason) = outcome { result = .failed(reason) } else { result = .written }
            lock.unlock()
            for tracker in trackers { tracker.settle(result) }
            lock.lock()
        }
        unsettledEvents -= events
        settleLocked(id..<id + 1)
        lock.unlock()
    }

    /// Marks the ids settled (one record, or ids lost to damage) and moves the settled mark over what is
    /// contiguous.
    private func settleLocked(_ ids: Range<UInt64>) {
        guard !ids.isEmpty, ids.upperBound > settledThrough else { return }
        if ids.lowerBound <= settledThrough {
            settledThrough = ids.upperBound
        } else {
            settledRanges[ids.lowerBound] = ids.upperBound
        }
        while let end = settledRanges.removeValue(forKey: settledThrough) { settledThrough = end }
    }

    /// Writes the ledger if settlements moved since the last one, then deletes the segments it covers. Returns
    /// whether segments were deleted. `exact` (at close) records how far records were really handed out, instead
    /// of the reservation ahead of it.
    @discardableResult
    package func checkpoint(exact: Bool = false) throws -> Bool {
        ledgerLock.lock()
        defer { ledgerLock.unlock() }
        let work: (UInt64, UInt64, UInt64, [UInt64])? = lock.withLock {
            let handedOut = exact ? readID : max(reservedThrough, readID)
            guard settledThrough != ledgerSettled || ledgerSequence == 0 || handedOut != reservedThrough else {
                return nil
            }
            ledgerSequence += 1
            let removable = segments.dropLast().filter { ($0.lastID.map { $0 < settledThrough }) ?? true }.map(
                \.firstID)
            return (settledThrough, handedOut, ledgerSequence, removable)
        }
        guard let (settled, handedOut, sequence, removable) = work else { return false }
        try writeLedger(settled: settled, handedOut: handedOut, sequence: sequence)
        lock.withLock {
            ledgerSettled = settled
            reservedThrough = handedOut
        }
        guard !removable.isEmpty else { return false }
        for id in removable { try files.unlink(DiskBuffer.segmentName(id)) }
        try files.syncDirectory()
        lock.withLock {
            segments.removeAll { removable.contains($0.firstID) }
            full = false
            lock.broadcast(DiskBuffer.spaceCondition)
        }
        return true
    }

    /// Records in the ledger that records up to `through` may be handed out, before they are: so that after a
    /// crash, the ledger's mark is at or past everything the output was given, and ``DiskBufferReport/replayedEvents``
    /// counts every entry that can arrive twice.
    private func reserve(through: UInt64) throws {
        ledgerLock.lock()
        defer { ledgerLock.unlock() }
        let work: (UInt64, UInt64)? = lock.withLock {
            guard reservedThrough < through else { return nil }
            ledgerSequence += 1
            return (settledThrough, ledgerSequence)
        }
        guard let (settled, sequence) = work else { return }
        try writeLedger(settled: settled, handedOut: through, sequence: sequence)
        lock.withLock {
            ledgerSettled = settled
            reservedThrough = through
        }
    }

    /// Whether settlements moved since the last checkpoint.
    package var needsCheckpoint: Bool { lock.withLock { settledThrough != ledgerSettled } }

    /// A last checkpoint and the files closed. The buffer is not used afterwards.
    package func close() throws {
        let waiting = lock.withLock {
            defer { upstream.removeAll() }
            return upstream.values.flatMap { $0 }
        }
        for tracker in waiting { tracker.settle(.failed("not written before shutdown; kept in the disk buffer")) }
        try checkpoint(exact: true)
        if activeFD >= 0 {
            try? sync()
            Glibc.close(activeFD)
            activeFD = -1
        }
        if readFD >= 0 {
            Glibc.close(readFD)
            readFD = -1
        }
        if lockFD >= 0 {
            Glibc.close(lockFD)
            lockFD = -1
        }
    }

    // MARK: Reading (the output's thread)

    private var totalBytes: Int { segments.reduce(0) { $0 + $1.size } }

    /// Hands out the next records, oldest first, as batches whose settlement the buffer hears.
    package func take(maxEvents: Int, minEvents: Int, timeout: Duration?) -> OutputQueue.Take {
        let deadline = timeout.map { monotonicNanos() &+ max(0, $0.nanoseconds) }
        lock.lock()
        let wanted = max(1, min(minEvents, 4096))
        while readID >= nextID || (unreadEvents < wanted && !inputClosed) {
            if inputClosed && (readID >= nextID || monotonicNanos() >= closeDeadline) {
                lock.unlock()
                return .closed
            }
            if readID < nextID, let deadline, monotonicNanos() >= deadline { break }
            readerWaiting = true
            readerThreshold = wanted
            let until = min(deadline ?? .max, inputClosed ? closeDeadline : .max)
            if until == .max {
                lock.wait(DiskBuffer.readerCondition)
            } else if !lock.wait(DiskBuffer.readerCondition, untilMonotonicNanos: until)
                && monotonicNanos() >= until
            {
                readerWaiting = false
                if readID < nextID { break }
                let closed = inputClosed && monotonicNanos() >= closeDeadline
                lock.unlock()
                return closed ? .closed : .timedOut
            }
        }
        readerWaiting = false
        if inputClosed && monotonicNanos() >= closeDeadline {
            lock.unlock()
            return .closed
        }
        let (current, reserved) = (readID, reservedThrough)
        lock.unlock()
        var limit = UInt64.max
        if current + DiskBuffer.reservation / 16 > reserved {
            // Without a reservation on disk, hand out anyway (the copies counter may then undercount).
            if (try? reserve(through: current + DiskBuffer.reservation)) != nil {
                limit = current + DiskBuffer.reservation
            }
        } else {
            limit = reserved
        }
        var taken: [Batch] = []
        var events = 0
        while events < maxEvents || taken.isEmpty {
            guard lock.withLock({ readID }) < limit, let (id, batch) = nextRecord() else { break }
            events += batch.count
            var out = batch
            let count = batch.count
            out.trackers = [
                DeliveryTracker { [weak self] outcome in self?.settle(id: id, events: count, outcome: outcome) }
            ]
            taken.append(out)
        }
        return taken.isEmpty ? .timedOut : .batches(taken)
    }

    /// The next record to hand out: from the hot copies when they start there, otherwise from disk.
    private func nextRecord() -> (UInt64, Batch)? {
        lock.lock()
        guard readID < nextID else {
            lock.unlock()
            return nil
        }
        let id = readID
        while hotHead < hot.count && hot[hotHead].id < id { dropHot() }
        if hotHead < hot.count && hot[hotHead].id == id {
            let record = hot[hotHead]
            dropHot()
            readID += 1
            unreadEvents -= record.batch.count
            readEventNumber = record.firstEvent + UInt64(record.batch.count)
            outstanding[id] = record.batch.receivedAtNanos
            lock.unlock()
            if readSegment != record.segment { openReader(record.segment) }
            readOffset = record.end
            readBuffer.removeAll(keepingCapacity: true)
            readBufferStart = readOffset
            return (id, record.batch)
        }
        let segmentList = segments
        lock.unlock()
        while true {
            guard let (header, batch) = readFromDisk(segmentList, id: id) else { return nil }
            if header.id < id { continue }
            let keep: Bool = lock.withLock {
                // Ids and entries between the last record and this one were lost to damage: settled, so that the
                // settled mark moves past them. Damage in segments of this run was not counted at the open.
                settleLocked(readID..<header.id)
                if let expected = readEventNumber, header.firstEvent > expected, header.id >= firstSegmentOfThisRun {
                    let lost = Int(header.firstEvent - expected)
                    unsettledEvents -= lost
                    unreadEvents -= lost
                    damage.lostEvents += lost
                }
                readEventNumber = header.firstEvent + UInt64(header.eventCount)
                readID = header.id + 1
                unreadEvents -= header.eventCount
                guard let batch else {
                    unsettledEvents -= header.eventCount
                    damage.skippedRecords += 1
                    damage.lostEvents += header.eventCount
                    settleLocked(header.id..<header.id + 1)
                    return false
                }
                outstanding[header.id] = batch.receivedAtNanos
                return true
            }
            if keep, let batch { return (header.id, batch) }
            if !keep { return nextRecord() }
        }
    }

    private func dropHot() {
        hotBytes -= hot[hotHead].bytes
        hotHead += 1
        if hotHead == hot.count {
            hot.removeAll(keepingCapacity: true)
            hotHead = 0
        } else if hotHead > 4096 {
            hot.removeFirst(hotHead)
            hotHead = 0
        }
    }

    private func openReader(_ segment: UInt64) {
        if readFD >= 0 { Glibc.close(readFD) }
        readFD = Glibc.open(files.path(DiskBuffer.segmentName(segment)), O_RDONLY | O_CLOEXEC)
        readSegment = segment
        readOffset = DiskBuffer.segmentHeaderSize
        readBuffer.removeAll(keepingCapacity: true)
        readBufferStart = readOffset
    }

    /// Reads the record at the reader's position (moving to the next segment at the end of one), skipping and
    /// counting damage; the batch is nil for a record whose payload does not parse. Nil when nothing more is
    /// published.
    private func readFromDisk(_ segmentList: [Segment], id: UInt64) -> (BufferRecord.Header, Batch?)? {
        while true {
            if readSegment == nil || !segmentList.contains(where: { $0.firstID == readSegment }) {
                guard let first = segmentList.first(where: { ($0.lastID ?? 0) >= id && $0.records > 0 }) else {
                    return nil
                }
                openReader(first.firstID)
            }
            guard let current = segmentList.firstIndex(where: { $0.firstID == readSegment }),
                let segment = readSegment
            else { return nil }
            let published = lock.withLock { segments.first { $0.firstID == segment }?.size ?? 0 }
            if readOffset >= published {
                guard current + 1 < segmentList.count else { return nil }
                openReader(segmentList[current + 1].firstID)
                continue
            }
            guard readFD >= 0 else {
                lock.withLock { failed = "cannot read \(files.path(DiskBuffer.segmentName(segment)))" }
                return nil
            }
            var scanner = SegmentScanner(
                fd: readFD, name: DiskBuffer.segmentName(segment), files: files, start: readOffset, end: published,
                buffer: readBuffer, bufferStart: readBufferStart)
            let counted = segment < firstSegmentOfThisRun
            do {
                while let item = try scanner.next(maxPayload: max(segmentSize, 64 << 20)) {
                    readOffset = scanner.offset
                    switch item {
                    case .record(let header):
                        if header.id < id { continue }
                        let batch = scanner.decodeRecord(header)
                        (readBuffer, readBufferStart) = scanner.remainingBuffer
                        return (header, batch)
                    case .damaged(let bytes, _), .torn(_, let bytes):
                        if !counted {
                            lock.withLock {
                                damage.skippedRecords += 1
                                damage.skippedBytes += bytes
                            }
                        }
                    }
                }
            } catch {
                lock.withLock { failed = "\(error)" }
                return nil
            }
            readOffset = published
            readBuffer.removeAll(keepingCapacity: true)
            readBufferStart = readOffset
        }
    }

    // MARK: Looking

    package var report: DiskBufferReport { snapshot }

    package var snapshot: DiskBufferReport {
        lock.withLock {
            let oldest =
                outstanding.values.min()
                ?? segments.first { ($0.lastID ?? 0) >= readID && $0.records > 0 }?.firstReceivedNanos
            return DiskBufferReport(
                path: directory, bytes: totalBytes, maxSize: settings.maxSize, events: unsettledEvents,
                records: Int(nextID - settledThrough) - settledRanges.reduce(0) { $0 + Int($1.value - $1.key) },
                segments: segments.count,
                oldestNanos: unsettledEvents > 0 ? oldest : nil,
                newestNanos: unsettledEvents > 0 ? segments.last { $0.records > 0 }?.lastReceivedNanos : nil,
                damage: damage, replayedEvents: replayedEvents, droppedFull: droppedFull, isFull: full,
                readFailure: failed)
        }
    }
}

extension BufferIOError {
    static func inUse(path: String, pid: String) -> BufferIOError {
        var error = BufferIOError(operation: "lock", path: path, code: EWOULDBLOCK)
        error.operation = "use the disk buffer (another routerd, pid \(pid), holds it):"
        return error
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.filter { !$0.isWhitespace && $0 != "\0" })
    }
}

/// CRC-32C of `count` bytes at `base`.
func routerdChecksum(_ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
    routerd_crc32c(0, base, count)
}
