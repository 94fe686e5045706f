import RouterCore

/// The top-level fields the dashboard shows, read from one entry's bytes.
struct EntryFieldValues: Sendable, Equatable {
    var timestamp: String?
    var level: String?
    var sequence: Int64?
    var host: String?
    var app: String?
    var message: String?
}

/// Reads the fields `http_stats` shows with the same scanner `validate_json` routes with, so that both agree on
/// what an entry says; absent, wrongly typed or unreadable fields are nil.
enum EntryFieldReader {
    /// Longest text kept per field; the rest is cut and marked with an ellipsis, to bound the errors ring.
    static let maxFieldBytes = 4096

    private static let noRequiredKeys = JSONRequiredKeys([])

    static func read(_ bytes: UnsafeRawBufferPointer) -> EntryFieldValues {
        let fields = JSONEntryScanner.scan(bytes, required: noRequiredKeys).fields
        func text(_ span: JSONSpan) -> String? {
            span.isPresent ? cut(JSONEntryScanner.decode(span, in: bytes)) : nil
        }
        return EntryFieldValues(
            timestamp: text(fields.timestamp), level: text(fields.level), sequence: fields.sequence,
            host: text(fields.host), app: text(fields.app), message: text(fields.message))
    }

    /// The raw bytes of a JSON string body (between the quotes, still escaped) decoded to text, cut at
    /// ``maxFieldBytes``.
    static func decode(_ raw: UnsafeRawBufferPointer) -> String {
        cut(
            JSONEntryScanner.decode(
                JSONSpan(start: 0, count: Int32(clamping: raw.count), hasEscapes: true), in: raw))
    }

    /// `text` cut to at most ``maxFieldBytes`` of UTF-8 (at a character boundary) plus an ellipsis.
    static func cut(_ text: String) -> String {
        guard text.utf8.count > maxFieldBytes else { return text }
        var kept = 0
        var end = text.startIndex
        for index in text.indices {
            let size = text[index].utf8.count
            if kept + size > maxFieldBytes { break }
            kept += size
            end = text.index(after: index)
        }
        return String(text[..<end]) + "…"
    }
}
