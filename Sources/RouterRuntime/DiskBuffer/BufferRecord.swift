import CRouterShims
package import RouterCore

/// The on-disk form of one batch in a disk buffer: a record.
///
/// A record is a 40-byte header and a payload, little-endian:
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `RDBR` |
/// | 4..<8 | payload length |
/// | 8..<16 | record id (consecutive from 0 over the buffer's life) |
/// | 16..<24 | event number of the record's first event (consecutive over the buffer's life) |
/// | 24..<28 | event count |
/// | 28..<36 | the batch's receive time (ns since the epoch) |
/// | 36..<40 | CRC-32C of bytes 4..<36 and the payload |
///
/// The payload holds the batch: its details, the reason names its events use, its senders, then each event's
/// fields and bytes (only the events' own bytes, however much storage the batch shared). Trackers and the reply
/// channel are not stored: they belong to the process that received the entries.
package enum BufferRecord {
    package static let headerSize = 40
    package static let magic: UInt32 = 0x5242_4452  // "RDBR" read little-endian
    /// The payload's fixed part per event.
    static let eventSize = 46

    /// A record's header, read back.
    package struct Header: Equatable, Sendable {
        package var payloadLength: Int
        package var id: UInt64
        package var firstEvent: UInt64
        package var eventCount: Int
        package var receivedAtNanos: Int64
        package var checksum: UInt32

        package var recordSize: Int { BufferRecord.headerSize + payloadLength }
    }

    /// Appends the record of `batch` to `out`.
    package static func encode(_ batch: Batch, id: UInt64, firstEvent: UInt64, into out: inout [UInt8]) {
        let start = out.count
        var reasons: [UInt16: UInt16] = [:]
        var reasonNames: [String] = []
        var senders: [SenderAddress: UInt16] = [:]
        var senderList: [SenderAddress] = []
        var entryBytes = 0
        for event in batch.events {
            entryBytes += Int(event.count)
            if event.reason != .none, reasons[event.reason.id] == nil, reasonNames.count < Int(UInt16.max) {
                reasons[event.reason.id] = UInt16(reasonNames.count + 1)
                reasonNames.append(event.reason.name)
            }
            if senders[event.sender] == nil, senderList.count < Int(UInt16.max) {
                senders[event.sender] = UInt16(senderList.count)
                senderList.append(event.sender)
            }
        }
        out.reserveCapacity(start + headerSize + 64 + batch.events.count * eventSize + entryBytes)
        out.append(contentsOf: repeatElement(0, count: headerSize))
        // The writer takes the array over (a swap, not a copy), so that its appends do not copy the buffer.
        var writer = ByteWriter(out: [])
        swap(&out, &writer.out)
        writer.u32(UInt32(batch.details.count))
        for detail in batch.details { writer.string(detail) }
        writer.u32(UInt32(reasonNames.count))
        for name in reasonNames { writer.string(name) }
        writer.u32(UInt32(senderList.count))
        for sender in senderList {
            writer.u8(sender.family)
            writer.u16(sender.port)
            writer.u64(sender.high)
            writer.u64(sender.low)
            writer.u32(sender.scope)
        }
        for event in batch.events {
            writer.i32(event.count)
            writer.i64(event.sequence)
            writer.i32(event.host.isPresent ? event.host.start - event.start : -1)
            writer.i32(event.host.count)
            writer.i32(event.app.isPresent ? event.app.start - event.start : -1)
            writer.i32(event.app.count)
            writer.u8(event.level.rawValue)
            writer.u8(event.flags.subtracting(.tracked).rawValue)
            writer.u16(event.reason == .none ? 0 : reasons[event.reason.id] ?? 0)
            writer.i32(event.detail)
            writer.i32(event.reasonOffset)
            writer.i32(event.arrivalOffsetMicros)
            writer.u16(senders[event.sender] ?? 0)
        }
        batch.bytes.withUnsafeBufferPointer { all in
            for event in batch.events {
                writer.out.append(
                    contentsOf: UnsafeBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)]))
            }
        }
        swap(&out, &writer.out)
        let payloadLength = out.count - start - headerSize
        out.withUnsafeMutableBytes { raw in
            guard let origin = raw.baseAddress else { return }
            let base = origin + start
            base.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            base.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 4, as: UInt32.self)
            base.storeBytes(of: id.littleEndian, toByteOffset: 8, as: UInt64.self)
            base.storeBytes(of: firstEvent.littleEndian, toByteOffset: 16, as: UInt64.self)
            base.storeBytes(of: UInt32(batch.events.count).littleEndian, toByteOffset: 24, as: UInt32.self)
            base.storeBytes(of: batch.receivedAtNanos.littleEndian, toByteOffset: 28, as: Int64.self)
            var crc = routerd_crc32c(0, base + 4, 32)
            crc = routerd_crc32c(crc, base + headerSize, payloadLength)
            base.storeBytes(of: crc.littleEndian, toByteOffset: 36, as: UInt32.self)
        }
    }

    /// The header at the start of `bytes`, if the magic and the length are plausible (the checksum is checked by
    /// ``verify(_:header:)`` once the payload is there).
    package static func header(_ bytes: UnsafeRawBufferPointer, maxPayload: Int) -> Header? {
        guard bytes.count >= headerSize, bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self) == magic.littleEndian
        else { return nil }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let count = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt32.self)))
        guard length <= maxPayload, count <= length / eventSize + 1 else { return nil }
        return Header(
            payloadLength: length,
            id: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            firstEvent: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            eventCount: count,
            receivedAtNanos: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 28, as: Int64.self)),
            checksum: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 36, as: UInt32.self)))
    }

    /// Whether the record at the start of `bytes` (header and whole payload) matches its checksum.
    package static func verify(_ bytes: UnsafeRawBufferPointer, header: Header) -> Bool {
        guard bytes.count >= header.recordSize, let base = bytes.baseAddress else { return false }
        var crc = routerd_crc32c(0, base + 4, 32)
        crc = routerd_crc32c(crc, base + headerSize, header.payloadLength)
        return crc == header.checksum
    }

    /// The batch of a verified record, or nil when its payload does not parse (a record written by a routerd
    /// with another layout, or damage that kept the checksum: both counted as skipped by the caller).
    package static func decode(_ bytes: UnsafeRawBufferPointer, header: Header) -> Batch? {
        var reader = ByteReader(
            bytes: UnsafeRawBufferPointer(rebasing: bytes[headerSize..<(headerSize + header.payloadLength)]))
        var batch = Batch(receivedAtNanos: header.receivedAtNanos)
        guard let detailCount = reader.u32(), Int(detailCount) <= header.payloadLength else { return nil }
        batch.details.reserveCapacity(Int(detailCount))
        for _ in 0..<detailCount {
            guard let detail = reader.string() else { return nil }
            batch.details.append(detail)
        }
        guard let reasonCount = reader.u32(), Int(reasonCount) <= header.payloadLength else { return nil }
        var reasons: [Reason] = [.none]
        for _ in 0..<reasonCount {
            guard let name = reader.string() else { return nil }
            reasons.append(Reason(name))
        }
        guard let senderCount = reader.u32(), Int(senderCount) <= header.payloadLength else { return nil }
        var senders: [SenderAddress] = []
        senders.reserveCapacity(Int(senderCount))
        for _ in 0..<senderCount {
            guard let family = reader.u8(), let port = reader.u16(), let high = reader.u64(), let low = reader.u64(),
                let scope = reader.u32()
            else { return nil }
            senders.append(SenderAddress(family: family, port: port, high: high, low: low, scope: scope))
        }
        guard reader.remaining >= header.eventCount * eventSize else { return nil }
        batch.events.reserveCapacity(header.eventCount)
        var offset: Int32 = 0
        var total = 0
        for _ in 0..<header.eventCount {
            guard let count = reader.i32(), let sequence = reader.i64(), let hostStart = reader.i32(),
                let hostCount = reader.i32(), let appStart = reader.i32(), let appCount = reader.i32(),
                let level = reader.u8(), let flags = reader.u8(), let reason = reader.u16(), let detail = reader.i32(),
                let reasonOffset = reader.i32(), let arrival = reader.i32(), let sender = reader.u16(),
                count >= 0, Int(reason) < reasons.count, Int(sender) < max(1, senders.count)
            else { return nil }
            var event = Event(start: offset, count: count, sender: senders.isEmpty ? .none : senders[Int(sender)])
            event.sequence = sequence
            event.host = span(hostStart, hostCount, in: offset, count)
            event.app = span(appStart, appCount, in: offset, count)
            event.level = Level(rawValue: level) ?? .unknown
            event.flags = EventFlags(rawValue: flags)
            event.reason = reasons[Int(reason)]
            event.detail = detail >= 0 && Int(detail) < batch.details.count ? detail : -1
            event.reasonOffset = reasonOffset
            event.arrivalOffsetMicros = arrival
            batch.events.append(event)
            offset += count
            total += Int(count)
        }
        guard reader.remaining == total else { return nil }
        batch.bytes = reader.rest()
        return batch
    }

    private static func span(_ start: Int32, _ count: Int32, in eventStart: Int32, _ eventCount: Int32) -> Span {
        guard start >= 0, count >= 0, start + count <= eventCount else { return .none }
        return Span(start: eventStart + start, count: count)
    }
}

private struct ByteWriter {
    var out: [UInt8]

    mutating func u8(_ value: UInt8) { out.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
    mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }
    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            u32(UInt32(utf8.count))
            out.append(contentsOf: utf8)
        }
    }
}

private struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func load<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard remaining >= MemoryLayout<T>.size else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func u8() -> UInt8? { load(UInt8.self) }
    mutating func u16() -> UInt16? { load(UInt16.self) }
    mutating func u32() -> UInt32? { load(UInt32.self) }
    mutating func u64() -> UInt64? { load(UInt64.self) }
    mutating func i32() -> Int32? { load(Int32.self) }
    mutating func i64() -> Int64? { load(Int64.self) }

    mutating func string() -> String? {
        guard let length = u32(), Int(length) <= remaining else { return nil }
        defer { offset += Int(length) }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(length))]), as: UTF8.self)
    }

    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[offset...]))
    }
}
