/// One acknowledgement from routerd's `ack` stage: `{"ack":true,"sequence":N,"status":"stored"}` or
/// `{"ack":false,"sequence":N,"status":"failed","reason":"..."}`.
struct AckReply: Equatable {
    var sequence: Int64
    var stored: Bool
    /// The `reason` of a negative ack (escapes left as they arrived), or nil.
    var reason: String?

    /// Reads an ack datagram with a plain byte scan (loadtest may receive tens of thousands per second);
    /// returns nil for anything that is not an ack with an integer sequence.
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let ackValue = AckReply.valueStart(of: "\"ack\"", in: bytes),
            let sequenceValue = AckReply.valueStart(of: "\"sequence\"", in: bytes)
        else { return nil }
        if AckReply.matches("true", in: bytes, at: ackValue) {
            stored = true
        } else if AckReply.matches("false", in: bytes, at: ackValue) {
            stored = false
        } else {
            return nil
        }
        var index = sequenceValue
        var negative = false
        if index < bytes.count && bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var value: Int64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        sequence = negative ? -value : value
        reason = nil
        if !stored, let reasonValue = AckReply.valueStart(of: "\"reason\"", in: bytes), reasonValue < bytes.count,
            bytes[reasonValue] == UInt8(ascii: "\"")
        {
            var end = reasonValue + 1
            while end < bytes.count && bytes[end] != UInt8(ascii: "\"") {
                end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
            }
            let text = bytes[(reasonValue + 1)..<min(end, bytes.count)]
            reason = String(decoding: text, as: UTF8.self)
        }
    }

    /// The index of the first byte of the value after `key` and its colon (whitespace skipped), or nil.
    private static func valueStart(of key: StaticString, in bytes: UnsafeRawBufferPointer) -> Int? {
        let keyBytes = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        guard bytes.count >= keyBytes.count else { return nil }
        var start = 0
        while start + keyBytes.count <= bytes.count {
            var equal = true
            for offset in 0..<keyBytes.count where bytes[start + offset] != keyBytes[offset] {
                equal = false
                break
            }
            if equal {
                var index = start + keyBytes.count
                while index < bytes.count && (bytes[index] == 0x20 || bytes[index] == 0x09) { index += 1 }
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                while index < bytes.count && (bytes[index] == 0x20 || bytes[index] == 0x09) { index += 1 }
                return index
            }
            start += 1
        }
        return nil
    }

    private static func matches(_ word: StaticString, in bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        let wordBytes = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard index + wordBytes.count <= bytes.count else { return false }
        for offset in 0..<wordBytes.count where bytes[index + offset] != wordBytes[offset] { return false }
        return true
    }
}
