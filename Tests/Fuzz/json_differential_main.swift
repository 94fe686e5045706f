// Differential fuzzer: JSONEntryScanner against CPython's json module (Tests/Fuzz/json_oracle.py).
//
//   json-differential --count 1000000 --seed 1 [--oracle PATH] [--batch N] [--show N]
//   json-differential --bench [--iterations N]
//
// Inputs are generated deterministically from the seed: valid JSON entries and values, mutations of them, and
// random byte strings. They are streamed to the oracle in length-prefixed batches; its verdicts (class, required
// mask, extracted fields) must equal the scanner's. Exits 1 on any mismatch.

import Foundation
import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Configuration shared with the oracle

private let requiredNames = ["timestamp", "level", "message", "sequence", "host"]
private let requiredAliases = ["sequence": ["seq"], "host": ["hostname"]]
private let seedEntry =
    #"{"timestamp":"2026-11-22T10:00:00.123456Z","sequence":42,"app":"web","level":"ERROR","message":"db timeout","#
    + #""host":"node-1"}"#

// MARK: - Deterministic randomness

private struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in 0..<bound (bound > 0).
    mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next() % UInt64(max(bound, 1)))
    }

    /// True with the given probability in percent.
    mutating func chance(_ percent: Int) -> Bool {
        below(100) < percent
    }

    mutating func byte() -> UInt8 {
        UInt8(truncatingIfNeeded: next())
    }

    mutating func pick<T>(_ items: [T]) -> T {
        items[below(items.count)]
    }
}

// MARK: - Generator

private let hexDigits = Array("0123456789abcdefABCDEF".utf8)
private let simpleEscapes = Array(#""\/bfnrt"#.utf8)
private let whitespace: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
private let structural = Array(#"{}[]:,"\ -+.eE0123456789tfnulrsaINfy"#.utf8)
private let invalidSequences: [[UInt8]] = [
    [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xF0, 0x80, 0x80, 0x80],
    [0xF0, 0x8F, 0xBF, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80],
    [0xF5, 0x80, 0x80, 0x80],
    [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE], [0x80], [0xBF], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3],
    [0xE2, 0x28, 0xA1], [0xF0, 0x28, 0x8C, 0xBC],
]
private let validSequences: [[UInt8]] = [
    [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],
    [0xEF, 0xBB, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF0, 0x9F, 0x98, 0x80],
    [0xE2, 0x80, 0xA8], [0xC2, 0xA0],
]
private let knownNames = ["timestamp", "sequence", "seq", "app", "level", "message", "host", "hostname"]

private struct Generator {
    var rng: SplitMix64
    var out: [UInt8] = []
    var depthBudget = 0

    init(seed: UInt64) {
        rng = SplitMix64(state: seed)
    }

    mutating func emit(_ text: String) {
        out.append(contentsOf: text.utf8)
    }

    mutating func whitespaceMaybe() {
        guard rng.chance(12) else { return }
        for _ in 0...rng.below(3) { out.append(rng.pick(whitespace)) }
    }

    mutating func hexEscape(_ value: Int) {
        out.append(0x5C)
        out.append(0x75)
        for shift in [12, 8, 4, 0] {
            let digit = (value >> shift) & 0xF
            let upper = rng.chance(30) && digit >= 10
            out.append(upper ? hexDigits[digit + 6] : hexDigits[digit])
        }
    }

    mutating func scalarBytes(_ scalar: Unicode.Scalar) {
        out.append(contentsOf: String(Character(scalar)).utf8)
    }

    mutating func randomScalar() {
        let roll = rng.below(4)
        var value: UInt32
        switch roll {
        case 0: value = UInt32(0x80 + rng.below(0x780))
        case 1: value = UInt32(0x800 + rng.below(0xF800))
        case 2: value = UInt32(0x10000 + rng.below(0x100000))
        default: value = UInt32(rng.pick([0xE9, 0x20AC, 0x1F600, 0xFEFF, 0x2028, 0xFFFD, 0x10FFFF, 0xD7FF, 0xE000]))
        }
        if value >= 0xD800 && value <= 0xDFFF { value = 0xE000 }
        if let scalar = Unicode.Scalar(value) { scalarBytes(scalar) }
    }

    /// String content without quotes.
    mutating func stringContent(maxLength: Int) {
        let length = rng.below(maxLength + 1)
        for _ in 0..<length {
            let roll = rng.below(100)
            switch roll {
            case 0..<62:
                var c = UInt8(0x20 + rng.below(0x5F))
                if c == 0x22 || c == 0x5C { c = 0x61 }
                out.append(c)
            case 62..<70:
                out.append(0x5C)
                out.append(rng.pick(simpleEscapes))
            case 70..<76:
                hexEscape(rng.below(0x10000))
            case 76..<79:
                hexEscape(0xD800 + rng.below(0x400))
                hexEscape(0xDC00 + rng.below(0x400))
            case 79..<81:
                hexEscape(0xD800 + rng.below(0x800))  // lone high or low surrogate
            case 81..<83:
                hexEscape(rng.below(0x20))
            case 83..<97:
                randomScalar()
            case 97:
                out.append(0x7F)
            default:
                out.append(contentsOf: rng.pick(validSequences))
            }
        }
    }

    mutating func string(maxLength: Int = 12) {
        out.append(0x22)
        stringContent(maxLength: maxLength)
        out.append(0x22)
    }

    mutating func digits(_ count: Int, leadingNonZero: Bool) {
        for index in 0..<count {
            let digit = leadingNonZero && index == 0 ? 1 + rng.below(9) : rng.below(10)
            out.append(UInt8(0x30 + digit))
        }
    }

    mutating func number() {
        switch rng.below(12) {
        case 0:
            emit(rng.pick(["0", "-0", "1", "-1", "9223372036854775807", "-9223372036854775808"]))
        case 1:
            emit(rng.pick(["9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e400", "-0.0"]))
        case 2:
            emit(String(Int64(bitPattern: rng.next()) >> rng.below(64)))
        case 3:
            if rng.chance(30) { out.append(0x2D) }
            digits(20 + rng.below(60), leadingNonZero: true)
        default:
            if rng.chance(25) { out.append(0x2D) }
            if rng.chance(20) { out.append(0x30) } else { digits(1 + rng.below(8), leadingNonZero: true) }
            if rng.chance(35) {
                out.append(0x2E)
                digits(1 + rng.below(8), leadingNonZero: false)
            }
            if rng.chance(25) {
                out.append(rng.chance(50) ? 0x65 : 0x45)
                if rng.chance(50) { out.append(rng.chance(50) ? 0x2B : 0x2D) }
                digits(1 + rng.below(3), leadingNonZero: false)
            }
        }
    }

    mutating func value(depth: Int) {
        let roll = rng.below(100)
        if depth < 6 && roll < 12 {
            object(depth: depth + 1, logFields: rng.chance(15))
        } else if depth < 6 && roll < 24 {
            array(depth: depth + 1)
        } else if roll < 55 {
            string(maxLength: 16)
        } else if roll < 85 {
            number()
        } else {
            emit(rng.pick(["true", "false", "null"]))
        }
    }

    mutating func array(depth: Int) {
        out.append(0x5B)
        whitespaceMaybe()
        let count = rng.below(5)
        for index in 0..<count {
            if index > 0 {
                out.append(0x2C)
                whitespaceMaybe()
            }
            value(depth: depth)
            whitespaceMaybe()
        }
        out.append(0x5D)
    }

    mutating func key(_ name: String) {
        let bytes = Array(name.utf8)
        out.append(0x22)
        let escapeAt = rng.chance(6) && !bytes.isEmpty ? rng.below(bytes.count) : -1
        for (index, byte) in bytes.enumerated() {
            if index == escapeAt {
                hexEscape(Int(byte))
            } else {
                out.append(byte)
            }
        }
        out.append(0x22)
    }

    mutating func fieldValue(_ name: String, depth: Int) {
        if rng.chance(6) {
            value(depth: depth)  // probably the wrong type
            return
        }
        switch name {
        case "timestamp":
            let text = "2026-11-\(10 + rng.below(20))T10:\(10 + rng.below(50)):00.\(100_000 + rng.below(900_000))Z"
            emit("\"\(text)\"")
        case "sequence", "seq":
            if rng.chance(85) { emit(String(rng.below(1_000_000))) } else { number() }
        case "level":
            if rng.chance(80) {
                emit("\"\(rng.pick(["DEBUG", "INFO", "WARN", "ERROR"]))\"")
            } else {
                string()
            }
        case "host", "hostname":
            emit("\"node-\(rng.below(100))\"")
        case "app":
            emit("\"\(rng.pick(["web", "api", "db", "w\\u00e9b"]))\"")
        default:
            string(maxLength: 40)
        }
    }

    mutating func object(depth: Int, logFields: Bool) {
        var members: [String] = []
        if logFields {
            for name in ["timestamp", "sequence", "app", "level", "message", "host"] where rng.chance(93) {
                if name == "sequence" && rng.chance(20) {
                    members.append("seq")
                } else if name == "host" && rng.chance(20) {
                    members.append("hostname")
                } else {
                    members.append(name)
                }
            }
            if rng.chance(8) { members.append(rng.pick(knownNames)) }
            if rng.chance(10), members.count > 1 { members.swapAt(rng.below(members.count), members.count - 1) }
        }
        for _ in 0..<rng.below(logFields ? 3 : 5) {
            members.insert(rng.chance(20) ? rng.pick(knownNames) : "", at: rng.below(members.count + 1))
        }
        out.append(0x7B)
        whitespaceMaybe()
        for (index, name) in members.enumerated() {
            if index > 0 {
                out.append(0x2C)
                whitespaceMaybe()
            }
            if name.isEmpty {
                string(maxLength: 8)
            } else {
                key(name)
            }
            whitespaceMaybe()
            out.append(0x3A)
            whitespaceMaybe()
            if name.isEmpty {
                value(depth: depth)
            } else {
                fieldValue(name, depth: depth)
            }
            whitespaceMaybe()
        }
        out.append(0x7D)
    }

    /// A chain of nested containers, at most `levels` deep, inside a top-level object.
    mutating func deepEntry(levels: Int) {
        var closers: [UInt8] = [0x7D]
        emit(#"{"level":"INFO","deep":"#)
        for _ in 1..<levels {
            if rng.chance(50) {
                out.append(0x5B)
                closers.append(0x5D)
            } else {
                emit(#"{"k":"#)
                closers.append(0x7D)
            }
        }
        number()
        out.append(contentsOf: closers.reversed())
    }

    mutating func validInput() {
        whitespaceMaybe()
        let roll = rng.below(100)
        if roll < 70 {
            object(depth: 1, logFields: true)
        } else if roll < 85 {
            object(depth: 1, logFields: false)
        } else if roll < 87 {
            deepEntry(levels: 2 + rng.below(499))
        } else {
            value(depth: 1)
        }
        whitespaceMaybe()
    }

    mutating func mutate() {
        let count = 1 + rng.below(3)
        for _ in 0..<count {
            let position = rng.below(out.count + 1)
            switch rng.below(13) {
            case 0:
                if position < out.count { out[position] ^= UInt8(1) << UInt8(rng.below(8)) }
            case 1:
                if position < out.count { out[position] = rng.byte() }
            case 2, 3:
                out.insert(rng.pick(structural), at: position)
            case 4:
                if position < out.count { out.removeSubrange(position..<min(out.count, position + 1 + rng.below(4))) }
            case 5:
                out.removeSubrange(position..<out.count)
            case 6:
                if position < out.count {
                    let end = min(out.count, position + 1 + rng.below(16))
                    out.insert(contentsOf: Array(out[position..<end]), at: rng.below(out.count + 1))
                }
            case 7:
                out.insert(UInt8(0x80 + rng.below(0x80)), at: position)
            case 8:
                out.insert(contentsOf: rng.pick(invalidSequences), at: position)
            case 9:
                out.insert(contentsOf: rng.pick(validSequences), at: position)
            case 10:
                let words = [
                    "NaN", "Infinity", "-Infinity", "\u{FEFF}", "\\u", "\\ud800", "\\x", "1.", ".5", "+1", "01",
                ]
                out.insert(contentsOf: Array(rng.pick(words).utf8), at: position)
            case 11:
                out.insert(UInt8(rng.below(0x20)), at: position)
            default:
                if out.count >= 2 {
                    out.swapAt(rng.below(out.count), rng.below(out.count))
                }
            }
        }
    }

    mutating func randomBytes() {
        let length = rng.below(48)
        let jsonish = rng.chance(60)
        for _ in 0..<length {
            out.append(jsonish ? rng.pick(structural + whitespace) : rng.byte())
        }
    }

    /// The next input.
    mutating func next() -> [UInt8] {
        out.removeAll(keepingCapacity: true)
        let roll = rng.below(100)
        if roll < 40 {
            validInput()
        } else if roll < 88 {
            validInput()
            mutate()
        } else {
            randomBytes()
        }
        return out
    }
}

// MARK: - Verdicts

private func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var text = ""
    for byte in bytes {
        text += String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
    }
    return text
}

/// The scanner's verdict in the oracle's line format, plus any internal-consistency complaint.
private func verdict(_ input: [UInt8], _ keys: JSONRequiredKeys) -> (line: String, complaint: String?) {
    input.withUnsafeBytes { raw in
        let result = JSONEntryScanner.scan(raw, required: keys)
        let cls: String
        switch result.problem {
        case .notUTF8?: return ("not_utf8 \(result.problemOffset)", nil)
        case .notJSON?: return ("not_json", nil)
        case .notObject?: return ("not_object", nil)
        case .wrongType?: cls = "wrong_type"
        case .missingField?: cls = "missing_field"
        case nil: cls = "ok"
        }
        var complaint: String?
        if result.problem == .wrongType {
            let offset = Int(result.problemOffset)
            let starts = Array(#"{["-0123456789tfn"#.utf8)
            if offset < 0 || offset >= input.count || !starts.contains(input[offset]) {
                complaint = "wrongType offset \(offset) is not at a value"
            }
        }
        func text(_ span: JSONSpan) -> String {
            guard span.isPresent else { return "-" }
            let start = Int(span.start)
            let end = start + Int(span.count)
            if start < 1 || end >= input.count || input[start - 1] != 0x22 || input[end] != 0x22
                || input[start..<end].contains(0x5C) != span.hasEscapes
            {
                complaint = "span \(span) is not a string's content"
                return "?"
            }
            return hex(JSONEntryScanner.decode(span, in: raw).utf8)
        }
        let fields = result.fields
        let missing = result.problem == .missingField ? Int(result.problemField) : -1
        let columns = [
            cls, String(fields.presentRequired), String(missing), text(fields.level),
            fields.sequence.map { String($0) } ?? "-", text(fields.host), text(fields.app), text(fields.message),
            text(fields.timestamp),
        ]
        return (columns.joined(separator: " "), complaint)
    }
}

// MARK: - Oracle process

private enum OracleError: Error {
    case io(String)
}

private final class Oracle {
    let process = Process()
    let toOracle = Pipe()
    let fromOracle = Pipe()

    init(script: String) throws {
        let config: [String: Any] = ["names": requiredNames, "aliases": requiredAliases]
        let configJSON = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, configJSON]
        process.standardInput = toOracle
        process.standardOutput = fromOracle
        try process.run()
    }

    func send(_ batch: [[UInt8]]) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(batch.reduce(4) { $0 + 4 + $1.count })
        func appendLength(_ value: Int) {
            withUnsafeBytes(of: UInt32(value).littleEndian) { buffer.append(contentsOf: $0) }
        }
        appendLength(batch.count)
        for input in batch {
            appendLength(input.count)
            buffer.append(contentsOf: input)
        }
        try writeAll(toOracle.fileHandleForWriting.fileDescriptor, buffer)
    }

    func receive() throws -> [Substring] {
        let header = try readExactly(fromOracle.fileHandleForReading.fileDescriptor, 4)
        let length = header.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        let body = try readExactly(fromOracle.fileHandleForReading.fileDescriptor, length)
        return String(decoding: body, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }

    func finish() {
        try? toOracle.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            guard let base = raw.baseAddress else { return }
            let written = write(fd, base + offset, raw.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw OracleError.io("write to oracle failed (errno \(errno))") }
            offset += written
        }
    }
}

private func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
    var data = [UInt8](repeating: 0, count: count)
    try data.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < count {
            guard let base = raw.baseAddress else { return }
            let got = read(fd, base + offset, count - offset)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw OracleError.io("oracle closed its output (did python3 fail?)") }
            offset += got
        }
    }
    return data
}

// MARK: - Driver

private struct Options {
    var count = 1_000_000
    var seed: UInt64 = 1
    var batch = 20_000
    var show = 5
    var bench = false
    var iterations = 10_000_000
    var oracle = "Tests/Fuzz/json_oracle.py"
}

private func parseOptions() -> Options? {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let argument = arguments.next() {
        switch argument {
        case "--bench":
            options.bench = true
        case "--count", "--seed", "--batch", "--show", "--iterations", "--oracle":
            guard let value = arguments.next() else { return nil }
            if argument == "--oracle" {
                options.oracle = value
                continue
            }
            guard let number = Int(value), number >= 0 else { return nil }
            switch argument {
            case "--count": options.count = number
            case "--seed": options.seed = UInt64(number)
            case "--batch": options.batch = max(1, number)
            case "--show": options.show = number
            default: options.iterations = max(1, number)
            }
        default:
            return nil
        }
    }
    if !FileManager.default.fileExists(atPath: options.oracle) {
        let besideSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("json_oracle.py").path
        if FileManager.default.fileExists(atPath: besideSource) { options.oracle = besideSource }
    }
    return options
}

/// Scans the seed entry `iterations` times in ten rounds; the best round is the figure least disturbed by other
/// load on the machine, the median shows the spread.
private func bench(iterations: Int) {
    let keys = JSONRequiredKeys(requiredNames, aliases: requiredAliases)
    let bytes = Array(seedEntry.utf8)
    let rounds = 10
    let perRound = max(1, iterations / rounds)
    var checksum = 0
    var perEntry: [Double] = []
    bytes.withUnsafeBytes { raw in
        for _ in 0..<100_000 { checksum &+= Int(JSONEntryScanner.scan(raw, required: keys).fields.host.count) }
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            let elapsed = clock.measure {
                for _ in 0..<perRound {
                    let result = JSONEntryScanner.scan(raw, required: keys)
                    checksum &+= Int(result.fields.sequence ?? 0) &+ Int(result.problemField)
                }
            }
            let nanoseconds =
                Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
            perEntry.append(nanoseconds / Double(perRound))
        }
    }
    perEntry.sort()
    let best = perEntry[0]
    let median = perEntry[rounds / 2]
    print(
        "scanned \(perRound * rounds) x \(bytes.count)-byte entry: best \(String(format: "%.1f", best)) ns/entry, "
            + "median \(String(format: "%.1f", median)) ns/entry "
            + "(\(String(format: "%.2f", Double(bytes.count) / best)) GB/s; checksum \(checksum))")
}

private struct Mismatch {
    var input: [UInt8]
    var swift: String
    var python: String
}

private func fuzz(_ options: Options) throws -> Bool {
    signal(SIGPIPE, SIG_IGN)
    let keys = JSONRequiredKeys(requiredNames, aliases: requiredAliases)
    let oracle = try Oracle(script: options.oracle)
    defer { oracle.finish() }
    var generator = Generator(seed: options.seed)
    var checked = 0
    var deepSkipped = 0
    var mismatchCount = 0
    var shown: [Mismatch] = []
    var classes: [String: Int] = [:]
    let started = ContinuousClock.now

    func makeBatch(_ size: Int) -> (inputs: [[UInt8]], verdicts: [(line: String, complaint: String?)]) {
        var inputs: [[UInt8]] = []
        var verdicts: [(line: String, complaint: String?)] = []
        inputs.reserveCapacity(size)
        verdicts.reserveCapacity(size)
        for _ in 0..<size {
            let input = generator.next()
            inputs.append(input)
            verdicts.append(verdict(input, keys))
        }
        return (inputs, verdicts)
    }

    var remaining = options.count
    var pending = makeBatch(min(options.batch, remaining))
    remaining -= pending.inputs.count
    try oracle.send(pending.inputs)
    while !pending.inputs.isEmpty {
        // Generate and scan the next batch while the oracle works on this one.
        let next = makeBatch(min(options.batch, remaining))
        remaining -= next.inputs.count
        let answers = try oracle.receive()
        guard answers.count == pending.inputs.count else {
            throw OracleError.io("oracle answered \(answers.count) lines for \(pending.inputs.count) inputs")
        }
        if !next.inputs.isEmpty { try oracle.send(next.inputs) }
        for (index, input) in pending.inputs.enumerated() {
            let swift = pending.verdicts[index]
            let python = String(answers[index])
            checked += 1
            let swiftClass = swift.line.prefix { $0 != " " }
            classes[String(swiftClass), default: 0] += 1
            if swift.line == "not_json" && python != "not_json"
                && input.reduce(0, { $0 + ($1 == 0x5B || $1 == 0x7B ? 1 : 0) }) > 512
            {
                deepSkipped += 1  // deeper than the scanner's 512-level limit: refused by design
                continue
            }
            if swift.line != python || swift.complaint != nil {
                mismatchCount += 1
                if shown.count < options.show {
                    let detail = swift.complaint.map { swift.line + " [\($0)]" } ?? swift.line
                    shown.append(Mismatch(input: input, swift: detail, python: python))
                }
            }
        }
        pending = next
    }
    let seconds = started.duration(to: .now).components.seconds
    let summary = classes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    print("checked \(checked) inputs, \(mismatchCount) mismatches (seed \(options.seed), \(seconds) s)")
    print("scanner classes: \(summary); deeper than 512 skipped: \(deepSkipped)")
    for mismatch in shown {
        print("--- mismatch")
        print("input:  \(hex(mismatch.input))")
        print("swift:  \(mismatch.swift)")
        print("python: \(mismatch.python)")
    }
    return mismatchCount == 0
}

@main
enum JSONDifferential {
    static func main() {
        guard let options = parseOptions() else {
            print("usage: json-differential [--count N] [--seed S] [--batch N] [--show N] [--oracle PATH]")
            print("       json-differential --bench [--iterations N]")
            exit(2)
        }
        if options.bench {
            bench(iterations: options.iterations)
            return
        }
        do {
            exit(try fuzz(options) ? 0 : 1)
        } catch {
            print("json-differential: \(error)")
            exit(2)
        }
    }
}
