import Router
import Testing

// Unit tests for JSONEntryScanner. The grammar expectations mirror CPython's json.loads (see
// Tests/Fuzz/json_oracle.py); the differential fuzzer in Tests/Fuzz checks the same thing at scale.

private let noKeys = JSONRequiredKeys([])
private let seedKeys = JSONRequiredKeys(
    ["timestamp", "sequence", "host"], aliases: ["sequence": ["seq"], "host": ["hostname"]])
private let seedEntry =
    #"{"timestamp":"2026-11-22T10:00:00.123456Z","sequence":42,"app":"web","level":"ERROR","message":"db timeout","#
    + #""host":"node-1"}"#

private func scan(_ bytes: [UInt8], _ keys: JSONRequiredKeys = noKeys) -> JSONEntryScanResult {
    bytes.withUnsafeBytes { JSONEntryScanner.scan($0, required: keys) }
}

private func scan(_ text: String, _ keys: JSONRequiredKeys = noKeys) -> JSONEntryScanResult {
    scan(Array(text.utf8), keys)
}

/// The decoded value of a string field, or nil when it is absent.
private func field(
    _ text: String, _ path: KeyPath<JSONEntryFields, JSONSpan>, _ keys: JSONRequiredKeys = noKeys
) -> String? {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { raw in
        let span = JSONEntryScanner.scan(raw, required: keys).fields[keyPath: path]
        return span.isPresent ? JSONEntryScanner.decode(span, in: raw) : nil
    }
}

/// `{"a":"` + bytes + `"}`: puts raw bytes inside a string value at offset 6.
private func inString(_ bytes: [UInt8]) -> [UInt8] {
    Array(#"{"a":""#.utf8) + bytes + Array(#""}"#.utf8)
}

private struct Rng {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next() % UInt64(max(bound, 1)))
    }
}

// MARK: - Grammar

private let acceptedObjects: [String] = [
    "{}", " \t\n\r{}\r\n\t ", #"{"a":1}"#, #"{"a":[1,2,{"b":null}],"c":{"d":true,"e":false}}"#, #"{"":""}"#,
    #"{ "a" : 1 , "b" : [ ] , "c" : { } }"#, #"{"a":"\u00e9\u20AC\uFFFF"}"#, #"{"a":"\\ \" \/ \b \f \n \r \t"}"#,
    #"{"a":-0}"#, #"{"a":0.0e+0}"#, #"{"a":1E-5}"#, #"{"a":-12.5e10}"#, #"{"a":123456789012345678901234567890}"#,
    "{\"a\":\"\u{7F}\"}", #"{"a":"é😀 \u0000"}"#, #"{"a":1,"a":2}"#, #"{"a":[[[]]]}"#, #"{"a":"\u0022"}"#,
]

private let notJSONInputs: [String] = [
    "", " ", "\n", "{", "}", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, "[1,]", "{a:1}", "{'a':1}", #"{"a":1}}"#,
    #"{"a":1} x"#, "{}{}", #"{"a":01}"#, #"{"a":+1}"#, #"{"a":.5}"#, #"{"a":1.}"#, #"{"a":1.e5}"#, #"{"a":1e}"#,
    #"{"a":1e+}"#, #"{"a":-}"#, #"{"a":--1}"#, #"{"a":0x10}"#, #"{"a":NaN}"#, #"{"a":Infinity}"#,
    #"{"a":-Infinity}"#, #"{"a":tru}"#, #"{"a":True}"#, #"{"a":nul}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#,
    #"{"a":"\u12G4"}"#, #"{"a":"\U0041"}"#, #"{"a":"\'"}"#, "{\"a\":\"\t\"}", "{\"a\":\"\u{0}\"}",
    "{\"a\":\"\u{1F}\"}", #"{"a":"unterminated}"#, #"{"a":1 "b":2}"#, #"{"a" 1}"#, "{1:2}", "\u{FEFF}{}",
    "{}\u{0C}", "\u{0B}{}", "\u{A0}{}", "{}\u{0}", #"{"a":[1 2]}"#, #"{"a":[}"#, #"{"a":{]}"#, #"{"a":"\"#,
    #"{"a":"\u"#, "[", "[[]", "\"", #"{"a":1,,"b":2}"#, #"{,"a":1}"#, #"{"a"::1}"#, "{\"a\"\u{C}:1}",
]

private let notObjectInputs: [String] = [
    "[]", "[1,2]", #""str""#, "42", "-1.5e3", "true", "false", "null", #" "x" "#, #"[{"level":"A"}]"#,
]

@Test(arguments: acceptedObjects)
func scanner_whenValidObject_accepts(_ text: String) {
    let result = scan(text)
    #expect(result.problem == nil, "\(text)")
    #expect(result.problemOffset == 0)
    #expect(result.problemField == -1)
}

@Test(arguments: notJSONInputs)
func scanner_whenSyntaxIsWrong_refusesAsNotJSON(_ text: String) {
    #expect(scan(text).problem == .notJSON, "\(text)")
}

@Test(arguments: notObjectInputs)
func scanner_whenTopLevelIsNotObject_refusesAsNotObject(_ text: String) {
    #expect(scan(text).problem == .notObject, "\(text)")
}

@Test func scanner_whenLoneSurrogateEscape_acceptsLikePython() {
    for text in [#"{"a":"\ud800"}"#, #"{"a":"\udc00\ud800"}"#, #"{"a":"x\uDBFFy"}"#, #"{"\ud800":1}"#] {
        #expect(scan(text).problem == nil, "\(text)")
    }
}

@Test func scanner_whenLeadingBOM_refusesAsNotJSON() {
    let result = scan([0xEF, 0xBB, 0xBF] + Array("{}".utf8))
    #expect(result.problem == .notJSON)
    #expect(result.problemOffset == 0)
}

@Test func scanner_whenOnlyJSONWhitespaceSurrounds_accepts() {
    #expect(scan(" \t\r\n{\"a\":1}\n\r\t ").problem == nil)
    for other in ["\u{0C}", "\u{0B}", "\u{A0}", "\u{2028}", "\u{85}"] {
        #expect(scan(other + "{}").problem == .notJSON)
        #expect(scan("{}" + other).problem == .notJSON)
    }
}

@Test func scanner_whenHugeNumbers_accepts() {
    let digits = String(repeating: "9", count: 5000)
    #expect(scan("{\"a\":\(digits)}").problem == nil)
    #expect(scan("{\"a\":-\(digits).\(digits)e-\(digits)}").problem == nil)
}

@Test func scanner_whenEmptyBuffer_refusesAsNotJSON() {
    let result = JSONEntryScanner.scan(UnsafeRawBufferPointer(start: nil, count: 0), required: seedKeys)
    #expect(result.problem == .notJSON)
    #expect(result.problemOffset == 0)
}

// MARK: - Problem offsets

@Test(arguments: [
    (#"{"a":1,}"#, 7), (#"{"a":1} x"#, 8), (#"{"a":"b"#, 7), (#"{"a":"\q"}"#, 7), ("{\"a\":\"x\ny\"}", 7),
    (#"{"a":01}"#, 6), (#"{"a":1.x}"#, 7), (#"{"a":tru}"#, 5), ("", 0), ("   ", 3), (#"{"a":"\u12x4"}"#, 10),
    ("{\"a\":1,\"b\" 2}", 11), (#"{"a":[1 2]}"#, 8),
])
func scanner_whenSyntaxError_reportsItsOffset(_ text: String, _ offset: Int) {
    let result = scan(text)
    #expect(result.problem == .notJSON, "\(text)")
    #expect(result.problemOffset == Int32(offset), "\(text)")
    #expect(result.problemField == -1)
}

@Test func scanner_whenNotObject_reportsTopLevelValueOffset() {
    let result = scan("  [1]")
    #expect(result.problem == .notObject)
    #expect(result.problemOffset == 2)
}

// MARK: - UTF-8

private let invalidUTF8: [[UInt8]] = [
    [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xF0, 0x80, 0x80, 0x80],
    [0xF0, 0x8F, 0xBF, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
    [0xF5, 0x80, 0x80, 0x80],
    [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE], [0x80], [0xBF], [0xE2, 0x82], [0xC3], [0xF0, 0x9F, 0x98],
    [0xE2, 0x28, 0xA1], [0xC3, 0xC3, 0xA9],
]

private let validUTF8: [[UInt8]] = [
    [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],
    [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBB, 0xBF],
]

@Test(arguments: invalidUTF8)
func scanner_whenInvalidUTF8InString_refusesAsNotUTF8AtSequenceStart(_ sequence: [UInt8]) {
    let result = scan(inString(sequence))
    #expect(result.problem == .notUTF8, "\(sequence)")
    #expect(result.problemOffset == 6, "\(sequence)")
}

@Test(arguments: validUTF8)
func scanner_whenValidMultibyteInString_accepts(_ sequence: [UInt8]) {
    #expect(scan(inString(sequence)).problem == nil, "\(sequence)")
    #expect(scan(inString(Array(repeating: 0x61, count: 13) + sequence)).problem == nil, "\(sequence)")
}

@Test func scanner_whenTruncatedSequenceAtEnd_refusesAsNotUTF8() {
    let result = scan(Array(#"{"a":""#.utf8) + [0xE2, 0x82])
    #expect(result.problem == .notUTF8)
    #expect(result.problemOffset == 6)
}

@Test func scanner_whenInvalidUTF8AfterSyntaxError_refusesAsNotUTF8LikePython() {
    // CPython decodes the whole datagram before parsing, so the invalid byte wins over the earlier syntax error.
    let result = scan(Array(#"{"a":x "#.utf8) + [0xFF])
    #expect(result.problem == .notUTF8)
    #expect(result.problemOffset == 7)
    #expect(scan(Array("[1]  ".utf8) + [0xC0, 0x80]).problem == .notUTF8)
}

@Test func scanner_whenValidNonASCIIOutsideStrings_refusesAsNotJSON() {
    let result = scan(#"{"a":1}é"#)
    #expect(result.problem == .notJSON)
    #expect(result.problemOffset == 7)
}

@Test func scanner_whenInvalidUTF8InKey_refusesAsNotUTF8() {
    let result = scan(Array(#"{"le"#.utf8) + [0xED, 0xA0, 0x80] + Array(#"":1}"#.utf8))
    #expect(result.problem == .notUTF8)
    #expect(result.problemOffset == 4)
}

@Test func scanner_whenSpecialByteAtAnyPositionOfLongString_findsItExactly() {
    // Exercises every lane of the eight-bytes-at-a-time fast path.
    for position in 0..<40 {
        func with(_ byte: UInt8) -> [UInt8] {
            var content = [UInt8](repeating: 0x78, count: 40)
            content[position] = byte
            return inString(content)
        }
        let offset = Int32(6 + position)
        for control: UInt8 in [0x00, 0x0A, 0x1F] {
            #expect(scan(with(control)).problem == .notJSON)
            #expect(scan(with(control)).problemOffset == offset)
        }
        for high: UInt8 in [0x80, 0xC3, 0xFF] {
            #expect(scan(with(high)).problem == .notUTF8)
            #expect(scan(with(high)).problemOffset == offset)
        }
        #expect(scan(with(0x22)).problem == .notJSON)
        #expect(scan(with(0x22)).problemOffset == offset + 1)
        // `\x` is a bad escape at the x; in the last position the backslash escapes the closing quote instead.
        #expect(scan(with(0x5C)).problem == .notJSON)
        #expect(scan(with(0x5C)).problemOffset == (position < 39 ? offset + 1 : 48))
        for plain: UInt8 in [0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7F] {
            #expect(scan(with(plain)).problem == nil)
        }
    }
}

@Test func scanner_whenBufferIsSliceOfLargerMemory_neverReadsPastItsEnd() {
    let entry = Array(#"{"message":"abcdefghijklmnopqrstuvwxyz"}"#.utf8)
    let whole = entry + Array(repeating: 0x7D, count: 16)
    whole.withUnsafeBytes { raw in
        for cut in 1..<entry.count {
            let slice = UnsafeRawBufferPointer(rebasing: raw[0..<cut])
            #expect(JSONEntryScanner.scan(slice, required: noKeys).problem == .notJSON)
        }
        let exact = UnsafeRawBufferPointer(rebasing: raw[0..<entry.count])
        #expect(JSONEntryScanner.scan(exact, required: noKeys).problem == nil)
    }
}

// MARK: - Depth

@Test func scanner_whenDepthIs512_accepts() {
    let text = #"{"a":"# + String(repeating: "[", count: 511) + String(repeating: "]", count: 511) + "}"
    #expect(scan(text).problem == nil)
}

@Test func scanner_whenDepthIs513_refusesAsNotJSONAtTheDeepBracket() {
    let text = #"{"a":"# + String(repeating: "[", count: 512) + String(repeating: "]", count: 512) + "}"
    let result = scan(text)
    #expect(result.problem == .notJSON)
    #expect(result.problemOffset == 5 + 511)
}

@Test func scanner_whenNested100000Deep_refusesAsNotJSONWithoutRecursion() {
    #expect(scan([UInt8](repeating: 0x5B, count: 100_000)).problem == .notJSON)
    let balanced = [UInt8](repeating: 0x5B, count: 100_000) + [UInt8](repeating: 0x5D, count: 100_000)
    #expect(scan(balanced).problem == .notJSON)
    let objects = String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_000)
    let result = scan(objects)
    #expect(result.problem == .notJSON)
    #expect(result.problemOffset == 512 * 5)
    #expect(scan([UInt8](repeating: 0x5B, count: 100_000) + [0xFF]).problem == .notUTF8)
}

// MARK: - Field extraction

@Test func scanner_whenSeedEntry_extractsEveryField() {
    let bytes = Array(seedEntry.utf8)
    bytes.withUnsafeBytes { raw in
        let result = JSONEntryScanner.scan(raw, required: seedKeys)
        #expect(result.problem == nil)
        #expect(result.problemField == -1)
        let fields = result.fields
        #expect(JSONEntryScanner.decode(fields.timestamp, in: raw) == "2026-11-22T10:00:00.123456Z")
        #expect(fields.sequence == 42)
        #expect(JSONEntryScanner.decode(fields.app, in: raw) == "web")
        #expect(JSONEntryScanner.decode(fields.level, in: raw) == "ERROR")
        #expect(JSONEntryScanner.decode(fields.message, in: raw) == "db timeout")
        #expect(JSONEntryScanner.decode(fields.host, in: raw) == "node-1")
        #expect(fields.presentRequired == 0b111)
        #expect(fields.level == JSONSpan(start: 78, count: 5, hasEscapes: false))
        #expect(!fields.level.hasEscapes)
    }
}

@Test func scanner_whenAliasesUsed_extractsSequenceAndHost() {
    let text = #"{"timestamp":"t","seq":7,"hostname":"h1"}"#
    let result = scan(text, seedKeys)
    #expect(result.problem == nil)
    #expect(result.fields.sequence == 7)
    #expect(result.fields.presentRequired == 0b111)
    #expect(field(text, \.host) == "h1")
}

@Test func scanner_whenDuplicateKeys_lastOccurrenceWins() {
    #expect(field(#"{"level":"A","level":"B"}"#, \.level) == "B")
    #expect(scan(#"{"seq":1,"sequence":2}"#).fields.sequence == 2)
    #expect(scan(#"{"sequence":2,"seq":1}"#).fields.sequence == 1)
    #expect(field(#"{"hostname":"a","host":"b"}"#, \.host) == "b")
    #expect(field(#"{"host":"a","hostname":"b"}"#, \.host) == "b")
}

@Test func scanner_whenDuplicateKeyChangesType_lastOccurrenceDecidesType() {
    let fixed = scan(#"{"level":1,"level":"X"}"#)
    #expect(fixed.problem == nil)
    let broken = scan(#"{"level":"X","level":1}"#)
    #expect(broken.problem == .wrongType)
    #expect(broken.problemOffset == 21)
    #expect(!broken.fields.level.isPresent)
    #expect(scan(#"{"seq":"1","sequence":1}"#).problem == nil)
    #expect(scan(#"{"sequence":1,"seq":"1"}"#).problem == .wrongType)
}

@Test func scanner_whenKeyHasEscapes_stillMatches() {
    #expect(field(#"{"lev\u0065l":"X"}"#, \.level) == "X")
    #expect(field(#"{"\u006Cevel":"X"}"#, \.level) == "X")
    #expect(field(#"{"host\u006eame":"n"}"#, \.host) == "n")
    #expect(scan(#"{"s\u0065q":5}"#).fields.sequence == 5)
    #expect(scan(#"{"tim\u0065stamp":"t","sequence":1,"host":"h"}"#, seedKeys).problem == nil)
    #expect(field(#"{"level\ud800":"X"}"#, \.level) == nil)
    #expect(field(#"{"lev\"el":"X"}"#, \.level) == nil)
}

@Test func scanner_whenValueHasEscapes_spanIsRawAndDecodes() {
    let text = #"{"message":"a\"b\\c\u00e9\ud83d\ude00\/\t"}"#
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { raw in
        let span = JSONEntryScanner.scan(raw, required: noKeys).fields.message
        #expect(span.hasEscapes)
        #expect(span.start == 12)
        #expect(Int(span.count) == bytes.count - 14)
        #expect(JSONEntryScanner.decode(span, in: raw) == "a\"b\\cé😀/\t")
    }
}

@Test func scanner_whenLoneSurrogateDecoded_becomesReplacementCharacter() {
    #expect(field(#"{"level":"\ud800x"}"#, \.level) == "\u{FFFD}x")
    #expect(field(#"{"level":"\udc00\ud800"}"#, \.level) == "\u{FFFD}\u{FFFD}")
    #expect(field(#"{"level":"\ud800\ud800\udc00"}"#, \.level) == "\u{FFFD}\u{10000}")
    #expect(field(#"{"level":"\ud800\u0041"}"#, \.level) == "\u{FFFD}A")
    #expect(field(#"{"level":"\uDBFF\uDFFF"}"#, \.level) == "\u{10FFFF}")
}

@Test func scanner_whenKnownKeyIsNested_ignoresIt() {
    let result = scan(#"{"x":{"level":"A","sequence":1},"y":[{"host":"h"}]}"#)
    #expect(result.problem == nil)
    #expect(!result.fields.level.isPresent)
    #expect(result.fields.sequence == nil)
    #expect(!result.fields.host.isPresent)
    let mixed = scan(#"{"x":{"level":1},"level":"B"}"#)
    #expect(mixed.problem == nil)
    #expect(field(#"{"x":{"level":1},"level":"B"}"#, \.level) == "B")
}

@Test(arguments: [
    "9223372036854775807", "-9223372036854775808", "0", "-0", "1",
])
func scanner_whenSequenceIsInt64_extractsIt(_ number: String) {
    let result = scan("{\"sequence\":\(number)}")
    #expect(result.problem == nil)
    #expect(result.fields.sequence == Int64(number))
}

@Test(arguments: [
    "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1.0", "1e2", "-0.0", #""42""#, "true",
    "null", "[1]", "{}",
])
func scanner_whenSequenceIsNotInt64_refusesAsWrongType(_ value: String) {
    let result = scan("{\"a\":1,\"seq\":\(value)}")
    #expect(result.problem == .wrongType, "\(value)")
    #expect(result.problemOffset == 13)
    #expect(result.problemField == -1)
    #expect(result.fields.sequence == nil)
}

@Test(arguments: ["level", "host", "hostname", "app", "message", "timestamp"])
func scanner_whenStringFieldHasOtherType_refusesAsWrongTypeAtValue(_ key: String) {
    for value in ["1", "-2.5", "{}", "[\"x\"]", "null", "true", "false"] {
        let text = "{\"k\":\"v\", \"\(key)\" : \(value)}"
        let result = scan(text)
        #expect(result.problem == .wrongType, "\(text)")
        #expect(Int(result.problemOffset) == 15 + key.utf8.count, "\(text)")
        #expect(result.problemField == -1)
    }
}

@Test func scanner_whenSeveralFieldsWronglyTyped_reportsTheFirstInTheBytes() {
    let result = scan(#"{"level":"ok","message":5,"app":[]}"#)
    #expect(result.problem == .wrongType)
    #expect(result.problemOffset == 24)
    #expect(result.fields.level.isPresent)
}

@Test func scanner_whenSyntaxErrorFollowsWrongType_refusesAsNotJSON() {
    #expect(scan(#"{"level":5,}"#).problem == .notJSON)
    #expect(scan(#"[{"level":5}]"#).problem == .notObject)
}

@Test func scanner_whenWrongTypeAndMissingField_reportsWrongType() {
    let result = scan(#"{"level":5}"#, seedKeys)
    #expect(result.problem == .wrongType)
    #expect(result.problemOffset == 9)
}

@Test func scanner_whenRequiredKeyMissing_reportsFirstMissingIndex() {
    let keys = JSONRequiredKeys(["a", "b", "c"])
    let first = scan(#"{"b":1}"#, keys)
    #expect(first.problem == .missingField)
    #expect(first.problemField == 0)
    #expect(first.problemOffset == 0)
    #expect(first.fields.presentRequired == 0b010)
    let second = scan(#"{"a":{},"c":null}"#, keys)
    #expect(second.problem == .missingField)
    #expect(second.problemField == 1)
    #expect(second.fields.presentRequired == 0b101)
    #expect(scan(#"{"c":1,"b":2,"a":3}"#, keys).problem == nil)
    #expect(scan(#"{"x":{"a":1,"b":1,"c":1}}"#, keys).problemField == 0)
}

@Test func scanner_whenRequiredAliasPresent_countsAsPresent() {
    let keys = JSONRequiredKeys(["sequence", "host"], aliases: ["sequence": ["seq", "n"], "host": ["hostname"]])
    #expect(scan(#"{"n":"not extracted","hostname":"h"}"#, keys).problem == nil)
    let result = scan(#"{"seq":1}"#, keys)
    #expect(result.problem == .missingField)
    #expect(result.problemField == 1)
}

@Test func scanner_whenRequiredNamesAreLongOrNonASCII_matchesBytewise() {
    let long = "a_very_long_required_key_name_over_16_bytes"
    let keys = JSONRequiredKeys([long, "héllo", "twelve_bytes"])
    #expect(scan("{\"\(long)\":1,\"héllo\":2,\"twelve_bytes\":3}", keys).problem == nil)
    #expect(scan("{\"\(long)x\":1,\"héllo\":2,\"twelve_bytes\":3}", keys).problemField == 0)
    let nearMiss = String(long.prefix(20)) + "X" + String(long.dropFirst(21))
    #expect(scan("{\"\(nearMiss)\":1,\"héllo\":2,\"twelve_bytes\":3}", keys).problemField == 0)
    #expect(scan("{\"\(long)\":1,\"hello\":2,\"twelve_bytes\":3}", keys).problemField == 1)
    #expect(scan("{\"\(long)\":1,\"héllo\":2,\"twelve_bytez\":3}", keys).problemField == 2)
    #expect(scan("{\"\(long)\":1,\"h\\u00e9llo\":2,\"twelve_bytes\":3}", keys).problem == nil)
}

@Test func requiredKeys_whenMoreThan64Names_keepsTheFirst64() {
    let names = (0..<70).map { "k\($0)" }
    let keys = JSONRequiredKeys(names)
    #expect(keys.names == Array(names.prefix(64)))
    let all = "{" + names.prefix(64).map { "\"\($0)\":0" }.joined(separator: ",") + "}"
    let result = scan(all, keys)
    #expect(result.problem == nil)
    #expect(result.fields.presentRequired == UInt64.max)
    let withoutLast = "{" + names.prefix(63).map { "\"\($0)\":0" }.joined(separator: ",") + "}"
    #expect(scan(withoutLast, keys).problemField == 63)
}

@Test func scanner_whenRefused_fieldsAreEmpty() {
    let result = scan(#"{"level":"A","sequence":1,"host":"h",}"#, seedKeys)
    #expect(result.problem == .notJSON)
    #expect(!result.fields.level.isPresent)
    #expect(result.fields.sequence == nil)
    #expect(result.fields.presentRequired == 0)
}

@Test func decode_whenSpanIsOutOfRangeOrAbsent_returnsEmptyString() {
    let bytes = Array(#"{"a":"b"}"#.utf8)
    bytes.withUnsafeBytes { raw in
        #expect(JSONEntryScanner.decode(.none, in: raw) == "")
        #expect(JSONEntryScanner.decode(JSONSpan(start: 5, count: 100, hasEscapes: false), in: raw) == "")
        #expect(JSONEntryScanner.decode(JSONSpan(start: 100, count: 1, hasEscapes: true), in: raw) == "")
        #expect(JSONEntryScanner.decode(JSONSpan(start: 2, count: -1, hasEscapes: false), in: raw) == "")
        #expect(JSONEntryScanner.decode(JSONSpan(start: 6, count: 1, hasEscapes: false), in: raw) == "b")
    }
    let malformed = Array(#"\u12\ud800\"#.utf8)
    malformed.withUnsafeBytes { raw in
        let span = JSONSpan(start: 0, count: Int32(malformed.count), hasEscapes: true)
        #expect(!JSONEntryScanner.decode(span, in: raw).isEmpty)
    }
}

@Test func spanNone_isAbsent() {
    #expect(!JSONSpan.none.isPresent)
    #expect(JSONSpan(start: 0, count: 0, hasEscapes: false).isPresent)
    #expect(JSONEntryFields().presentRequired == 0)
}

// MARK: - Randomized robustness

private let templates: [String] = [
    seedEntry,
    #"{"seq":-9223372036854775808,"hostname":"h\u00e9","level":"\ud800","message":"x\"y\\z","a":[1,{"b":null}]}"#,
    #" { "timestamp" : "t" , "sequence" : 1.5e3 , "x" : [ true , false , null , -0 , "é😀" ] } "#,
    #"[1,"two",{"three":3}]"#, #"{"lev\u0065l":"INFO","n":{"level":[[[]]]},"level":"WARN"}"#,
]
private let insertions: [[UInt8]] =
    Array(#"{}[]:,"\ -+.eE0tfn"#.utf8).map { [$0] } + [
        [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80], [0xFF], [0xC3, 0xA9],
        [0xF0, 0x9F, 0x98, 0x80], Array("\\u".utf8), Array("\\ud800".utf8), Array("NaN".utf8), [0x00], [0x1F],
    ]

/// A deterministic mutation of one of the templates.
private func mutatedInput(_ rng: inout Rng) -> [UInt8] {
    var bytes = Array(templates[rng.below(templates.count)].utf8)
    for _ in 0...rng.below(4) {
        let position = rng.below(bytes.count + 1)
        switch rng.below(7) {
        case 0:
            if position < bytes.count { bytes[position] ^= UInt8(1) << UInt8(rng.below(8)) }
        case 1:
            if position < bytes.count { bytes[position] = UInt8(truncatingIfNeeded: rng.next()) }
        case 2:
            bytes.insert(contentsOf: insertions[rng.below(insertions.count)], at: position)
        case 3:
            if position < bytes.count { bytes.removeSubrange(position..<min(bytes.count, position + 1 + rng.below(3))) }
        case 4:
            bytes.removeSubrange(position..<bytes.count)
        case 5:
            if position < bytes.count {
                let end = min(bytes.count, position + 1 + rng.below(12))
                bytes.insert(contentsOf: Array(bytes[position..<end]), at: rng.below(bytes.count + 1))
            }
        default:
            bytes = (0..<rng.below(24)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
    }
    return bytes
}

private func sameOutcome(_ a: JSONEntryScanResult, _ b: JSONEntryScanResult) -> Bool {
    a.problem == b.problem && a.problemOffset == b.problemOffset && a.problemField == b.problemField
        && a.fields.level == b.fields.level && a.fields.sequence == b.fields.sequence && a.fields.host == b.fields.host
        && a.fields.app == b.fields.app && a.fields.message == b.fields.message
        && a.fields.timestamp == b.fields.timestamp && a.fields.presentRequired == b.fields.presentRequired
}

@Test func scanner_whenAMillionMutatedInputs_neverCrashesAndClassifiesDeterministically() {
    var rng = Rng(state: 0x5EED)
    var failures = 0
    var accepted = 0
    for _ in 0..<1_000_000 {
        let input = mutatedInput(&rng)
        let first = scan(input, seedKeys)
        let again = scan(input, seedKeys)
        var ok = sameOutcome(first, again)
        ok = ok && first.problemOffset >= 0 && Int(first.problemOffset) <= input.count
        if first.problem == nil || first.problem == .missingField || first.problem == .wrongType {
            accepted += first.problem == nil ? 1 : 0
            // A valid object keeps its verdict inside JSON whitespace and loses it with trailing garbage.
            let wrapped = scan([0x20, 0x0A] + input + [0x09], seedKeys)
            ok = ok && wrapped.problem == first.problem && wrapped.problemField == first.problemField
            ok = ok && scan(input + [0x78], seedKeys).problem == .notJSON
            if let close = input.lastIndex(of: 0x7D) {
                ok = ok && scan(Array(input[..<close]), seedKeys).problem == .notJSON
            }
            let spans = [first.fields.level, first.fields.host, first.fields.app, first.fields.message]
            for span in spans where span.isPresent {
                let start = Int(span.start)
                let end = start + Int(span.count)
                ok = ok && start >= 1 && end < input.count && input[start - 1] == 0x22 && input[end] == 0x22
            }
        }
        if !ok { failures += 1 }
    }
    #expect(failures == 0)
    #expect(accepted > 0)
}
