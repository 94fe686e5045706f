internal import CPCRE2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A compiled regular expression (PCRE2, JIT-compiled where the platform allows), matched on UTF-8 bytes as they
/// sit in the entry: no copy, no `String`.
///
/// Syntax is Perl's (PCRE2): `(?i)` for case-insensitive, `\d`, `\w` and `\b` in their Unicode meaning (`UCP`),
/// unanchored search. Invalid UTF-8 in a subject never matches a character class and never fails the match.
final class Pattern: @unchecked Sendable {
    // Safe to share: the compiled code is read-only after compilation, and PCRE2 allows matching it from several
    // threads at once, each with its own match data (``Matcher``).
    private let code: OpaquePointer
    /// The pattern as written.
    let text: String

    /// Compiles `text`, or throws the PCRE2 message and the offset it points at.
    init(_ text: String) throws(PatternError) {
        var message = [CChar](repeating: 0, count: 256)
        var offset = 0
        let compiled = text.withCString { pattern in
            routerd_pcre2_compile(pattern, strlen(pattern), &message, message.count, &offset)
        }
        guard let compiled else {
            let end = message.firstIndex(of: 0) ?? message.count
            let words = String(decoding: message[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw PatternError(message: words, offset: offset)
        }
        code = compiled
        self.text = text
    }

    deinit { routerd_pcre2_code_free(code) }

    /// Match data for one thread: make one per batch and use it for every entry of the batch.
    func matcher() -> Matcher { Matcher(code) }

    /// Scratch space for matching on one thread.
    final class Matcher {
        private let code: OpaquePointer
        private let data: OpaquePointer?

        fileprivate init(_ code: OpaquePointer) {
            self.code = code
            data = routerd_pcre2_match_data_create(code)
        }

        deinit { if let data { routerd_pcre2_match_data_free(data) } }

        /// Whether the pattern matches anywhere in the `count` bytes at `subject`.
        func matches(_ subject: UnsafePointer<UInt8>?, _ count: Int) -> Bool {
            guard let data else { return false }
            var start = 0
            var end = 0
            guard let subject else {
                var empty: UInt8 = 0
                return routerd_pcre2_search(code, &empty, 0, 0, 0, data, &start, &end) == 1
            }
            return routerd_pcre2_search(code, subject, count, 0, 0, data, &start, &end) == 1
        }

        /// Appends the subject with every match replaced by `replacement` to `output`, as `re.sub` does; false
        /// (and nothing appended) when nothing matched.
        func replaceMatches(
            in subject: UnsafeBufferPointer<UInt8>, with replacement: some Collection<UInt8>, into output: inout [UInt8]
        ) -> Bool {
            guard let data else { return false }
            var empty: UInt8 = 0
            // PCRE2 reads only `count` bytes, but wants a valid pointer for an empty subject too.
            return withUnsafePointer(to: &empty) { emptyPointer in
                let base = subject.baseAddress ?? emptyPointer
                let count = subject.count
                let begin = output.count
                var copied = 0
                var position = 0
                var options: UInt32 = 0
                var found = false
                while position <= count {
                    var start = 0
                    var end = 0
                    let result = routerd_pcre2_search(code, base, count, position, options, data, &start, &end)
                    if result != 1 {
                        // After an empty match, an empty match at the same place is refused; step one character.
                        guard options != 0, position < count else { break }
                        position += utf8Length(base[position])
                        options = 0
                        continue
                    }
                    found = true
                    output.append(contentsOf: UnsafeBufferPointer(start: base + copied, count: start - copied))
                    output.append(contentsOf: replacement)
                    copied = end
                    position = end
                    options = start == end ? routerd_pcre2_not_empty_at_start | routerd_pcre2_anchored : 0
                    if start == end && position >= count { break }
                }
                guard found else {
                    output.removeSubrange(begin...)
                    return false
                }
                output.append(contentsOf: UnsafeBufferPointer(start: base + copied, count: count - copied))
                return true
            }
        }
    }
}

/// The length of the UTF-8 sequence a lead byte starts (1 for a stray byte).
private func utf8Length(_ lead: UInt8) -> Int {
    lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
}

/// A regular expression that does not compile.
struct PatternError: Error, CustomStringConvertible {
    /// PCRE2's message.
    var message: String
    /// The byte offset in the pattern the message is about.
    var offset: Int

    var description: String { "\(message) (at offset \(offset))" }
}
