import CRouterShims
import Foundation
import Router
import Synchronization
import Testing

@testable import RouterRuntime

/// A fresh directory under the temporary directory, removed by the caller.
private func scratchDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "routerd-buffer-\(name)-\(UUID().uuidString.prefix(8))"
    try? FileManager.default.removeItem(atPath: path)
    return path
}

/// A batch of `count` entries numbered from `first`: `{"seq":N,"msg":"..."}`.
private func numbered(_ first: Int, _ count: Int, sender: SenderAddress = .ipv4(127, 0, 0, 1, port: 5000)) -> Batch {
    var batch = Batch(receivedAtNanos: 1_700_000_000_000_000_000 + Int64(first))
    for number in first..<(first + count) {
        let index = batch.append(Array(#"{"seq":\#(number),"msg":"entry number \#(number)"}"#.utf8), sender: sender)
        batch.events[index].sequence = Int64(number)
    }
    return batch
}

/// The sequence numbers of the entries in `batches`, in order.
private func sequences(_ batches: [Batch]) -> [Int] {
    batches.flatMap { batch in batch.events.map { Int($0.sequence) } }
}

/// Takes everything the buffer hands out now (without waiting), settling each batch as written when `settle`.
private func drain(_ buffer: DiskBuffer, settle: Bool = true) -> [Batch] {
    var all: [Batch] = []
    while case .batches(let batches) = buffer.take(maxEvents: 1000, minEvents: 1, timeout: .zero) {
        if settle { for batch in batches { batch.settle(.written) } }
        all += batches
    }
    return all
}

private let settings = BufferSettings(kind: .disk, maxSize: 1 << 20, sync: .everyBatch)

@Suite struct DiskBufferTests {
    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        let bytes = Array("123456789".utf8)
        #expect(routerd_crc32c(0, bytes, bytes.count) == 0xE306_9283)
        // Continuing over two calls gives the same as one.
        let first = routerd_crc32c(0, bytes, 4)
        #expect(routerd_crc32c(first, Array(bytes[4...]), 5) == 0xE306_9283)
    }

    @Test func aRecordKeepsEveryFieldOfItsEventsAndOnlyTheirOwnBytes() throws {
        var batch = Batch(receivedAtNanos: 42)
        batch.details = ["first detail", "second"]
        batch.append(Array(#"{"host":"a\"b","app":"x"}"#.utf8), sender: .ipv4(10, 1, 2, 3, port: 9))
        batch.append(Array("not json".utf8))
        batch.events[0].host = Span(start: 9, count: 4)
        batch.events[0].app = Span(start: 22, count: 1)
        batch.events[0].level = .error
        batch.events[0].flags = [.fieldsExtracted, .hostEscaped, .tracked]
        batch.events[0].sequence = 7
        batch.events[0].arrivalOffsetMicros = 1234
        batch.events[1].reason = Reason("invalid_json")
        batch.events[1].detail = 1
        batch.events[1].reasonOffset = 3
        // A subset sharing the storage: only its event's bytes go into the record.
        let subset = batch.with(events: [batch.events[1], batch.events[0]])
        var bytes: [UInt8] = []
        BufferRecord.encode(subset, id: 5, firstEvent: 100, into: &bytes)
        let header = try #require(bytes.withUnsafeBytes { BufferRecord.header($0, maxPayload: 1 << 20) })
        #expect(header.id == 5 && header.firstEvent == 100 && header.eventCount == 2 && header.receivedAtNanos == 42)
        #expect(bytes.withUnsafeBytes { BufferRecord.verify($0, header: header) })
        let decoded = try #require(bytes.withUnsafeBytes { BufferRecord.decode($0, header: header) })
        #expect(decoded.count == 2)
        #expect(decoded.text(of: decoded.events[0]) == "not json")
        #expect(decoded.text(of: decoded.events[1]) == #"{"host":"a\"b","app":"x"}"#)
        #expect(decoded.events[0].reason.name == "invalid_json")
        #expect(decoded.detail(of: decoded.events[0]) == "second")
        #expect(decoded.events[0].reasonOffset == 3)
        let event = decoded.events[1]
        #expect(decoded.withBytes(of: event.host) { String(decoding: $0, as: UTF8.self) } == #"a\"b"#)
        #expect(decoded.withBytes(of: event.app) { String(decoding: $0, as: UTF8.self) } == "x")
        #expect(event.level == .error && event.sequence == 7 && event.arrivalOffsetMicros == 1234)
        // The tracked flag belongs to this process's trackers, which a record does not carry.
        #expect(event.flags == [.fieldsExtracted, .hostEscaped])
        #expect(event.sender == .ipv4(10, 1, 2, 3, port: 9))
        #expect(decoded.bytes.count == Int(batch.events[0].count + batch.events[1].count))
        // One flipped payload byte fails the checksum.
        bytes[BufferRecord.headerSize + 10] ^= 0x20
        #expect(!bytes.withUnsafeBytes { BufferRecord.verify($0, header: header) })
    }

    @Test func entriesComeOutInOrderAndOnlyUnsettledOnesComeBackAfterAReopen() throws {
        let path = scratchDirectory("order")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let buffer = try DiskBuffer(directory: path, settings: settings, hotLimit: 0)
            for first in stride(from: 0, to: 100, by: 10) {
                #expect(try buffer.append([numbered(first, 10)]) == .appended)
            }
            try buffer.sync()
            #expect(buffer.snapshot.events == 100)
            guard case .batches(let batches) = buffer.take(maxEvents: 40, minEvents: 1, timeout: .zero) else {
                Issue.record("nothing to take")
                return
            }
            #expect(sequences(batches) == Array(0..<40))
            for batch in batches { batch.settle(.written) }
            try buffer.close()
        }
        let reopened = try DiskBuffer(directory: path, settings: settings)
        #expect(reopened.snapshot.events == 60)
        #expect(reopened.snapshot.replayedEvents == 0)
        #expect(sequences(drain(reopened)) == Array(40..<100))
        #expect(try reopened.append([numbered(100, 5)]) == .appended)
        #expect(sequences(drain(reopened)) == Array(100..<105))
        #expect(reopened.snapshot.events == 0)
    }

    @Test func recordsHandedOutButNotSettledAreCountedAsReplayedAtTheNextOpen() throws {
        let path = scratchDirectory("replay")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let buffer = try DiskBuffer(directory: path, settings: settings)
            #expect(try buffer.append([numbered(0, 10), numbered(10, 10), numbered(20, 10)]) == .appended)
            try buffer.sync()
            let taken = drain(buffer, settle: false)
            #expect(sequences(taken) == Array(0..<30))
            taken[0].settle(.written)
            try buffer.close()
        }
        let reopened = try DiskBuffer(directory: path, settings: settings)
        #expect(reopened.snapshot.events == 20)
        #expect(reopened.snapshot.replayedEvents == 20)
        #expect(sequences(drain(reopened)) == Array(10..<30))
    }

    @Test func aTornTailIsCutAndCountedAndTheRestIsDelivered() throws {
        let path = scratchDirectory("torn")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let segment: String
        do {
            let buffer = try DiskBuffer(directory: path, settings: settings)
            for first in stride(from: 0, to: 50, by: 10) {
                #expect(try buffer.append([numbered(first, 10)]) == .appended)
            }
            try buffer.sync()
            segment = path + "/" + DiskBuffer.segmentName(0)
        }
        // Cut the last record in the middle, as a crash in the middle of its write leaves it.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int)
        #expect(truncate(segment, off_t(size - 30)) == 0)
        let reopened = try DiskBuffer(directory: path, settings: settings)
        #expect(reopened.snapshot.damage.cutRecords == 1)
        #expect(reopened.snapshot.damage.cutBytes > 0)
        #expect(sequences(drain(reopened)) == Array(0..<40))
        // The cut is made on disk: a second open finds nothing more to cut.
        try reopened.close()
        let again = try DiskBuffer(directory: path, settings: settings)
        #expect(again.snapshot.damage.cutRecords == 0)
    }

    @Test func aFlippedByteInTheMiddleSkipsThatRecordAndCountsItsEntries() throws {
        let path = scratchDirectory("flip")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let buffer = try DiskBuffer(directory: path, settings: settings)
            for first in stride(from: 0, to: 50, by: 10) {
                #expect(try buffer.append([numbered(first, 10)]) == .appended)
            }
            try buffer.sync()
        }
        let segment = path + "/" + DiskBuffer.segmentName(0)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        // Somewhere inside the third record.
        var starts: [Int] = [DiskBuffer.segmentHeaderSize]
        for _ in 0..<3 {
            let header = try #require(
                bytes.withUnsafeBytes {
                    BufferRecord.header(UnsafeRawBufferPointer(rebasing: $0[starts.last!...]), maxPayload: 1 << 20)
                })
            starts.append(starts.last! + header.recordSize)
        }
        let recordSize = starts[3] - starts[2]
        bytes[starts[2] + recordSize / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let reopened = try DiskBuffer(directory: path, settings: settings)
        let damage = reopened.snapshot.damage
        #expect(damage.skippedRecords == 1)
        #expect(damage.skippedBytes == recordSize)
        #expect(damage.lostEvents == 10)
        #expect(sequences(drain(reopened)) == Array(0..<20) + Array(30..<50))
        // What was skipped does not hold the settled mark back: everything is settled now.
        #expect(reopened.snapshot.events == 0)
        try reopened.checkpoint()
        #expect(reopened.snapshot.records == 0)
    }

    @Test func aDamagedLedgerOrSegmentHeaderNeverStopsTheOpen() throws {
        let path = scratchDirectory("ledger")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let buffer = try DiskBuffer(directory: path, settings: settings)
            #expect(try buffer.append([numbered(0, 10), numbered(10, 10)]) == .appended)
            try buffer.sync()
            drain(buffer).first.map { _ in () }
            try buffer.close()
        }
        // Garbage over the ledger: both slots fail their checksums, so everything still on disk is delivered.
        try Data(repeating: 0xAB, count: 128).write(to: URL(fileURLWithPath: path + "/ledger"))
        let reopened = try DiskBuffer(directory: path, settings: settings)
        #expect(sequences(drain(reopened)) == Array(0..<20))
    }

    @Test func pastMaxSizeAppendsAreRefusedUntilSettledSegmentsAreDeleted() throws {
        let path = scratchDirectory("full")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let small = BufferSettings(kind: .disk, maxSize: 1 << 20, sync: .everyBatch)
        let buffer = try DiskBuffer(directory: path, settings: small, hotLimit: 0)
        var appended = 0
        while case .appended = try buffer.append([numbered(appended, 100)]) { appended += 100 }
        #expect(buffer.snapshot.isFull)
        #expect(buffer.snapshot.bytes <= small.maxSize)
        #expect(buffer.snapshot.segments > 4)
        guard case .full(let reason) = try buffer.append([numbered(appended, 100)]) else {
            Issue.record("an append past max_size was taken")
            return
        }
        #expect(reason.contains("max_size"))
        #expect(sequences(drain(buffer)) == Array(0..<appended))
        #expect(try buffer.checkpoint())
        #expect(buffer.snapshot.segments == 1)
        #expect(try buffer.append([numbered(appended, 100)]) == .appended)
    }

    @Test func aSegmentThatCannotBeReadIsReportedAndItsEntriesStayCounted() throws {
        let path = scratchDirectory("unreadable")
        defer { try? FileManager.default.removeItem(atPath: path) }
        // hotLimit 0: every entry is read back from its segment, none from memory.
        let buffer = try DiskBuffer(directory: path, settings: settings, hotLimit: 0)
        var appended = 0
        while buffer.snapshot.segments < 3 {
            #expect(try buffer.append([numbered(appended, 100)]) == .appended)
            appended += 100
        }
        #expect(buffer.snapshot.readFailure == nil)
        // The second segment goes (as a failing disk or a hand would take it) before the reader reaches it.
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".seg") }.sorted()
        try FileManager.default.removeItem(atPath: path + "/" + names[1])
        let read = sequences(drain(buffer))
        #expect(!read.isEmpty && read.count < appended)
        #expect(read == Array(read.indices))
        let failure = try #require(buffer.snapshot.readFailure)
        #expect(failure.contains(names[1]))
        #expect(buffer.snapshot.events == appended - read.count)
    }

    @Test func aSecondRouterCannotOpenABufferInUse() throws {
        let path = scratchDirectory("lock")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try DiskBuffer(directory: path, settings: settings)
        #expect(throws: BufferIOError.self) { _ = try DiskBuffer(directory: path, settings: settings) }
        _ = first
    }

    @Test func withAcknowledgeWhenWrittenSendersHearOnlyWhenTheOutputSettles() throws {
        let path = scratchDirectory("ack")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let buffer = try DiskBuffer(
            directory: path, settings: BufferSettings(kind: .disk, sync: .everyBatch, acknowledge: .whenWritten))
        let heard = Mutex<[DeliveryOutcome]>([])
        let tracker = DeliveryTracker { outcome in heard.withLock { $0.append(outcome) } }
        var batch = numbered(0, 3)
        batch.trackers = [tracker]
        tracker.beginDelivery()
        tracker.releaseCreationHold()
        #expect(try buffer.append([batch]) == .appended)
        try buffer.sync()
        #expect(heard.withLock { $0 }.isEmpty)
        _ = drain(buffer)
        #expect(heard.withLock { $0 } == [.written(outputs: 1)])
    }
}

/// The crash-point test: a scripted run of appends, syncs, hand-outs, settlements and checkpoints (with segment
/// rolls and deletions) is crashed at every step that changes the disk (each create, write, fsync, rename,
/// unlink and truncate, before and after it, and each write torn in half), then the directory is opened again.
@Suite struct DiskBufferCrashPointTests {
    /// What the run had told the outside world when it crashed.
    private struct Promises {
        /// Sequences whose append was synced (their senders heard).
        var durable: Set<Int> = []
        /// Sequences settled by the output, and of those, the ones the last completed checkpoint covered.
        var settled: Set<Int> = []
        var checkpointed: Set<Int> = []
    }

    /// The scripted run; throws ``SimulatedCrash`` where the hook says.
    private func run(_ path: String, hook: @escaping @Sendable (BufferStep) -> StepFault, promises: inout Promises)
        throws
    {
        let small = BufferSettings(kind: .disk, maxSize: 1 << 20, sync: .everyBatch)
        let buffer = try DiskBuffer(directory: path, settings: small, hotLimit: 4096, hook: hook)
        var next = 0
        var outstanding: [Batch] = []
        for round in 0..<12 {
            let batches = [numbered(next, 150), numbered(next + 150, 150)]
            guard case .appended = try buffer.append(batches) else { break }
            try buffer.sync()
            promises.durable.formUnion(next..<(next + 300))
            next += 300
            if case .batches(let taken) = buffer.take(maxEvents: 400, minEvents: 1, timeout: .zero) {
                outstanding += taken
            }
            // Settle all but the newest batch handed out, then checkpoint every other round.
            while outstanding.count > 1 {
                let batch = outstanding.removeFirst()
                batch.settle(.written)
                promises.settled.formUnion(sequences([batch]))
            }
            if round % 2 == 1 {
                let covered = promises.settled
                try buffer.checkpoint()
                promises.checkpointed = covered
            }
        }
        try buffer.close()
        promises.checkpointed = promises.settled
    }

    @Test func everyCrashPointKeepsWhatWasSyncedAndRepeatsOnlyWhatNoCheckpointCovered() throws {
        // A clean run first, counting the steps.
        let counting = Mutex<[BufferStep]>([])
        let cleanPath = scratchDirectory("crash-count")
        defer { try? FileManager.default.removeItem(atPath: cleanPath) }
        var clean = Promises()
        try run(
            cleanPath,
            hook: { step in
                counting.withLock { $0.append(step) }; return .proceed
            }, promises: &clean)
        let steps = counting.withLock { $0 }
        #expect(steps.count > 50)
        #expect(steps.contains { if case .unlink = $0 { true } else { false } })
        var crashes = 0
        for (index, step) in steps.enumerated() {
            var faults: [StepFault] = [.crashBefore, .crashAfter]
            if case .write(_, let bytes) = step, bytes > 1 { faults.append(.crashTorn(bytes: bytes / 2)) }
            for fault in faults {
                let path = scratchDirectory("crash-\(index)")
                defer { try? FileManager.default.removeItem(atPath: path) }
                let seen = Atomic<Int>(0)
                let hook: @Sendable (BufferStep) -> StepFault = { _ in
                    seen.wrappingAdd(1, ordering: .relaxed).oldValue == index ? fault : .proceed
                }
                var promises = Promises()
                do {
                    try run(path, hook: hook, promises: &promises)
                } catch is SimulatedCrash {
                    crashes += 1
                }
                // The open after the crash never fails, and delivers in order, once each.
                let reopened: DiskBuffer
                do {
                    reopened = try DiskBuffer(directory: path, settings: BufferSettings(kind: .disk))
                } catch {
                    Issue.record("open after a crash at step \(index) (\(step), \(fault)) failed: \(error)")
                    continue
                }
                let replayed = reopened.snapshot.replayedEvents
                let delivered = sequences(drain(reopened))
                #expect(delivered == delivered.sorted(), "crash at \(step) \(fault): out of order")
                #expect(Set(delivered).count == delivered.count, "crash at \(step) \(fault): delivered twice")
                let missing = promises.durable.subtracting(promises.settled).subtracting(delivered)
                #expect(missing.isEmpty, "crash at \(step) \(fault): lost \(missing.sorted().prefix(5))")
                // Copies (settled before the crash, delivered again) are only ever among what the open counted.
                let copies = promises.settled.intersection(delivered)
                #expect(
                    copies.count <= replayed, "crash at \(step) \(fault): \(copies.count) copies, \(replayed) counted")
                let repeated = promises.checkpointed.intersection(delivered)
                #expect(repeated.isEmpty, "crash at \(step) \(fault): repeated what a checkpoint covered")
            }
        }
        #expect(crashes > 2 * steps.count - 5)
    }
}
