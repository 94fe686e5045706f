import Foundation
import Router
import RouterSupport
import Testing

@testable import Filters

// MARK: - Fixtures

/// One message from scripts/make-verify-fixtures.py, with what `verify` must do with it.
private struct VerifyCase {
    var name: String
    var entry: [UInt8]
    /// `pass` or the rejection reason.
    var expect: String
    /// Python's `json.dumps(entry_without_checksum, sort_keys=True)`, when the entry is a JSON object.
    var dumps: String?
    /// The verify options the case is judged with (the jwt.decode arguments Python judged it with).
    var options: [String: OptionValue]
}

/// A message exactly as the seed's client (Source1/client.py) made it with PyJWT.
private struct SeedClientMessage {
    var clientID: Int
    var counter: Int
    var issuedAt: Int64
    var message: String
}

/// Tests/StageTests/Fixtures/verify/cases.json, made by Python (PyJWT, json, hashlib) for a fixed receive time.
private struct VerifyFixtures {
    var secret: String
    var nowSeconds: Int64
    var cases: [VerifyCase]
    var seedClient: [SeedClientMessage]

    static func load() throws -> VerifyFixtures {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/verify/cases.json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try #require(object["cases"] as? [[String: Any]]).map { item in
            VerifyCase(
                name: item["name"] as? String ?? "?",
                entry: Array(Data(base64Encoded: item["entry_base64"] as? String ?? "") ?? Data()),
                expect: item["expect"] as? String ?? "?",
                dumps: item["dumps"] as? String, options: options(item["rules"] as? [String: Any] ?? [:]))
        }
        let seedClient = try #require(object["seed_client"] as? [[String: Any]]).map { item in
            SeedClientMessage(
                clientID: item["client_id"] as? Int ?? 0, counter: item["counter"] as? Int ?? 0,
                issuedAt: Int64(item["now"] as? Int ?? 0), message: item["message"] as? String ?? "")
        }
        return VerifyFixtures(
            secret: try #require(object["secret"] as? String), nowSeconds: Int64(try #require(object["now"] as? Int)),
            cases: cases, seedClient: seedClient)
    }

    /// A case's `rules` as verify options.
    private static func options(_ rules: [String: Any]) -> [String: OptionValue] {
        var options: [String: OptionValue] = [:]
        if let issuer = rules["issuer"] as? String { options["issuer"] = .string(issuer) }
        if let audience = rules["audience"] as? String { options["audience"] = .string(audience) }
        if let require = rules["require"] as? [String] { options["require"] = .list(require.map(OptionValue.string)) }
        if let leeway = rules["leeway_seconds"] as? Int { options["leeway"] = .duration(.seconds(leeway)) }
        return options
    }

    func entry(_ name: String) throws -> [UInt8] {
        try #require(cases.first { $0.name == name }, "no fixture named \(name)").entry
    }
}

/// What a verify filter did with one batch.
private struct Verified {
    var passed: [String]
    var rejected: [(text: String, reason: String, detail: String?, offset: Int32)]

    var reasons: [String] { rejected.map(\.reason) }
}

private func run(_ filter: Verify, _ entries: [[UInt8]], atSeconds now: Double) -> Verified {
    var batch = Batch(receivedAtNanos: Int64(now * 1e9))
    for entry in entries { batch.append(entry) }
    return run(filter, batch)
}

private func run(_ filter: Verify, _ batch: Batch) -> Verified {
    var output = FilterOutput(portCount: 2)
    filter.process(batch, into: &output)
    var verified = Verified(passed: [], rejected: [])
    for routed in output.ports[0] {
        verified.passed += routed.events.map { routed.text(of: $0) }
    }
    for routed in output.ports[1] {
        for event in routed.events {
            verified.rejected.append(
                (routed.text(of: event), event.reason.name, routed.detail(of: event), event.reasonOffset))
        }
    }
    return verified
}

@Suite("verify")
struct VerifyFilterTests {
    private let fixtures: VerifyFixtures

    init() throws {
        fixtures = try VerifyFixtures.load()
    }

    private func makeFilter(_ options: [String: OptionValue] = [:]) throws -> (Verify, StageCounters) {
        var values: [String: OptionValue] = ["secret": .string(fixtures.secret)]
        values.merge(options) { $1 }
        let context = try StageHarness.context(for: Verify.self, name: "verified", options: values)
        return (try Verify(context: context), context.counters)
    }

    private var now: Double { Double(fixtures.nowSeconds) }

    // MARK: Python's verdicts

    @Test func verify_routesEveryPythonMadeMessageAsItsFixtureSays() throws {
        #expect(fixtures.cases.count > 100)
        for item in fixtures.cases {
            let (filter, _) = try makeFilter(item.options)
            let verified = run(filter, [item.entry], atSeconds: now)
            let outcome = verified.passed.count == 1 ? "pass" : verified.reasons.first ?? "nothing"
            #expect(outcome == item.expect, "\(item.name): \(verified.rejected.first?.detail ?? "")")
        }
    }

    @Test func verify_inOneBatch_keepsEveryEntryAndCountsEachReason() throws {
        for reason in Verify.reasons {
            #expect(fixtures.cases.contains { $0.expect == reason }, "no fixture for \(reason)")
        }
        // One batch per set of options, with every case judged by it.
        let groups = Dictionary(grouping: fixtures.cases) { $0.options.description }
        #expect(groups.count > 5)
        for cases in groups.values {
            let (filter, counters) = try makeFilter(cases[0].options)
            for reason in Verify.reasons {
                #expect(counters.snapshot().contains { $0.key.name == "rejected" && $0.key.value == reason })
            }
            let verified = run(filter, cases.map(\.entry), atSeconds: now)
            #expect(verified.passed.count == cases.filter { $0.expect == "pass" }.count)
            #expect(verified.passed.count + verified.rejected.count == cases.count)
            for reason in Verify.reasons {
                let expected = cases.filter { $0.expect == reason }.count
                #expect(counters.value("rejected", label: "reason", value: reason) == expected, "\(reason)")
            }
            #expect(verified.rejected.allSatisfy { $0.detail?.isEmpty == false })
        }
    }

    @Test func serializer_reproducesPythonsJSONDumpsByteForByte() throws {
        var document = JSONDocument()
        var checked = 0
        for item in fixtures.cases {
            guard let dumps = item.dumps else { continue }
            var output: [UInt8] = []
            let error = item.entry.withUnsafeBytes { bytes in
                let error = document.parse(bytes)
                document.appendPythonDumps(of: bytes, omittingTopLevelKey: Array("checksum".utf8), to: &output)
                return error
            }
            guard item.name != "not_json_nan" else { continue }
            #expect(error == nil, "\(item.name)")
            #expect(String(decoding: output, as: UTF8.self) == dumps, "\(item.name)")
            checked += 1
        }
        #expect(checked > 40)
    }

    @Test func diodeChecksum_equalsTheChecksumPythonWroteIntoEveryValidMessage() throws {
        var document = JSONDocument()
        for item in fixtures.cases where item.expect == "pass" {
            // Foundation refuses lone surrogates, which some fixtures have: read the field with the document.
            let written = item.entry.withUnsafeBytes { bytes -> String? in
                guard document.parse(bytes) == nil, let index = document.member(Array("checksum".utf8), in: bytes),
                    let range = document.rawString(at: index)
                else { return nil }
                return String(decoding: bytes[range], as: UTF8.self)
            }
            #expect(written != nil, "\(item.name)")
            #expect(try DiodeMessage.checksum(of: item.entry) == written, "\(item.name)")
        }
    }

    // MARK: Details

    @Test func verify_rejections_sayWhatWasWrong() throws {
        var details: [String: String] = [:]
        for item in fixtures.cases where item.expect != "pass" {
            let (filter, _) = try makeFilter(item.options)
            let rejected = run(filter, [item.entry], atSeconds: now).rejected.first
            details[item.name] = rejected.map { "\($0.reason): \($0.detail ?? "")" }
        }
        #expect(details["expired"] == "expired: expired 10s ago")
        #expect(details["expired_now"] == "expired: expired 0.0s ago")
        #expect(details["not_yet_valid_nbf"] == "not_yet_valid: 'nbf' is 60s in the future")
        #expect(details["wrong_issuer"] == "wrong_issuer: issuer 'someone_else' is not 'udp_client'")
        #expect(
            details["wrong_issuer_missing"] == "wrong_issuer: the token has no 'iss' claim (expected 'udp_client')")
        #expect(details["wrong_issuer_number"] == "wrong_issuer: 'iss' is not a string (expected 'udp_client')")
        #expect(
            details["wrong_audience_unexpected"]
                == "wrong_audience: the token names an audience ('aud') and none is expected")
        #expect(details["wrong_audience_other"] == "wrong_audience: audience 'other' is not 'store'")
        #expect(
            details["malformed_token_no_exp_required"]
                == "malformed_token: the token has no 'exp' claim, which 'require' lists")
        #expect(details["malformed_token_exp_text"] == "malformed_token: 'exp' is not an integer")
        #expect(details["malformed_token_sub_number"] == "malformed_token: 'sub' is not a string")
        #expect(
            details["bad_signature_no_alg"]
                == "bad_signature: the header names no algorithm ('alg'): only HS256 is accepted")
        #expect(details["missing_token_empty"] == "missing_token: 'token' is empty")
        #expect(details["missing_token_null"] == "missing_token: 'token' is null")
        #expect(
            details["bad_signature_alg_none"]
                == "bad_signature: algorithm 'none' is refused: only HS256 is accepted")
        #expect(details["bad_signature_other_secret"] == "bad_signature: the signature does not match the secret")
        #expect(details["missing_token"] == "missing_token: no 'token' field")
        #expect(details["missing_checksum"] == "missing_checksum: no 'checksum' field")
        #expect(details["malformed_token_number"] == "malformed_token: 'token' is a number, not a string")
        #expect(
            details["malformed_token_two_parts"]
                == "malformed_token: a JWT has 3 parts separated by '.', this token has 2")
        #expect(details["bad_checksum_not_a_string"] == "bad_checksum: 'checksum' is a number, not a string")
        #expect(details["not_json_array"] == "not_json: a JSON array, not an object")
        #expect(details["not_json_bad_utf8"] == "not_json: not UTF-8 at byte 15")
        #expect(
            details["not_json_int_too_long"]
                == "not_json: integer at byte 6 has more than 4300 digits (Python refuses it)")
        let (filter, _) = try makeFilter()
        #expect(run(filter, [try fixtures.entry("not_json_bad_utf8")], atSeconds: now).rejected.first?.offset == 15)
    }

    @Test func verify_badChecksum_namesTheChecksumTheEntryHashesTo() throws {
        let (filter, _) = try makeFilter()
        let entry = try fixtures.entry("bad_checksum_wrong_digest")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(entry)) as? [String: Any])
        var original = object
        original["checksum"] = nil
        let rejected = try #require(run(filter, [entry], atSeconds: now).rejected.first)
        let actual = try DiodeMessage.checksum(of: entry)
        #expect(rejected.detail == "'checksum' is '\(String(repeating: "0", count: 32))', the entry's is \(actual)")
    }

    // MARK: Time

    @Test func verify_byDefault_allowsNoClockSkew_asPyJWT() throws {
        let (filter, _) = try makeFilter()
        let entry = try fixtures.entry("valid_plain")  // iat now-2, exp now+28
        #expect(run(filter, [entry], atSeconds: now + 27.9).passed.count == 1)
        #expect(run(filter, [entry], atSeconds: now + 28).reasons == ["expired"])
        #expect(run(filter, [entry], atSeconds: now - 2).passed.count == 1)
        let early = run(filter, [entry], atSeconds: now - 2.5)
        #expect(early.reasons == ["not_yet_valid"])
        #expect(early.rejected.first?.detail == "'iat' is 0.5s in the future")
    }

    @Test func verify_usesTheBatchReceiveTime_withTheLeewayOnBothSides() throws {
        let (filter, _) = try makeFilter(["leeway": .duration(.seconds(5))])
        let entry = try fixtures.entry("valid_plain")  // iat now-2, exp now+28
        #expect(run(filter, [entry], atSeconds: now + 32.9).passed.count == 1)
        let late = run(filter, [entry], atSeconds: now + 33)
        #expect(late.reasons == ["expired"])
        #expect(late.rejected.first?.detail == "expired 5.0s ago")
        #expect(run(filter, [entry], atSeconds: now - 7).passed.count == 1)
        let early = run(filter, [entry], atSeconds: now - 8)
        #expect(early.reasons == ["not_yet_valid"])
        #expect(early.rejected.first?.detail == "'iat' is 6.0s in the future")
    }

    @Test func verify_byDefault_rejectsATokenThatExpiredThreeSecondsAgo_asTheSeedDoes() throws {
        let (filter, _) = try makeFilter()
        let verified = run(filter, [try fixtures.entry("valid_exp_within_leeway")], atSeconds: now)
        #expect(verified.reasons == ["expired"])
        #expect(verified.rejected.first?.detail == "expired 3.0s ago")
        let (lenient, _) = try makeFilter(["leeway": .duration(.seconds(5))])
        #expect(run(lenient, [try fixtures.entry("valid_exp_within_leeway")], atSeconds: now).passed.count == 1)
    }

    @Test func verify_whenTheBatchHasNoReceiveTime_usesTheWallClock() throws {
        let (filter, _) = try makeFilter()
        let nowSeconds = wallClockNanos() / 1_000_000_000
        let fresh = DiodeMessage.make(
            clientID: 1, text: "t", secret: Array(fixtures.secret.utf8), issuedAt: nowSeconds)
        let verified = run(filter, Batch(lines: [String(decoding: fresh, as: UTF8.self)]))
        #expect(verified.passed.count == 1, "\(verified.rejected)")
        // The fixtures' tokens are made for a time that is not now.
        #expect(
            run(filter, Batch(lines: [String(decoding: try fixtures.entry("valid_plain"), as: UTF8.self)])).passed
                .isEmpty)
    }

    // MARK: Options

    @Test func verify_withChecksumOff_checksOnlyTheToken() throws {
        let (filter, counters) = try makeFilter(["checksum": .bool(false)])
        let names = ["missing_checksum", "bad_checksum_wrong_digest", "bad_checksum_not_a_string", "expired"]
        let verified = run(filter, try names.map(fixtures.entry), atSeconds: now)
        #expect(verified.passed.count == 3)
        #expect(verified.reasons == ["expired"])
        #expect(counters.total("rejected") == 1)
    }

    @Test func verify_readsTheConfiguredFieldsAndIssuer() throws {
        let (filter, _) = try makeFilter([
            "token_field": .string("jwt"), "checksum_field": .string("md5"), "issuer": .string("sensor_gateway"),
        ])
        let secret = Array(fixtures.secret.utf8)
        let claims = #"{"iss":"sensor_gateway","exp":\#(fixtures.nowSeconds + 30)}"#
        let token = HS256Token.sign(claims: Array(claims.utf8), secret: secret)
        let body = #"{"jwt": "\#(token)", "reading": 21.5}"#
        let md5 = try DiodeMessage.checksum(of: Array(body.utf8), omitting: "md5")
        let entry = #"{"jwt": "\#(token)", "reading": 21.5, "md5": "\#(md5)"}"#
        #expect(run(filter, [Array(entry.utf8)], atSeconds: now).passed == [entry])
        let seed = run(filter, [try fixtures.entry("valid_plain")], atSeconds: now)
        #expect(seed.reasons == ["missing_token"])
        #expect(seed.rejected.first?.detail == "no 'jwt' field")
    }

    @Test func verify_declarationCheck_refusesAnEmptySecretAndOneFieldForBoth() {
        let defaults: [String: OptionValue] = [
            "secret": .string(""), "token_field": .string("sig"), "checksum_field": .string("sig"),
            "checksum": .bool(true), "issuer": .string("udp_client"), "leeway": .duration(.seconds(5)),
            "require": .list([]),
        ]
        #expect(
            Verify.declaration.check(StageOptions(defaults)) == [
                #"'secret' is empty: set it, usually from "${SECRET_KEY:?set SECRET_KEY}""#,
                "'token_field' and 'checksum_field' are both 'sig'",
            ])
        var fine = defaults
        fine["secret"] = .string("s")
        fine["checksum"] = .bool(false)
        #expect(Verify.declaration.check(StageOptions(fine)).isEmpty)
        var empty = fine
        empty["issuer"] = .string("")
        empty["audience"] = .string("")
        empty["require"] = .list([.string("exp"), .string("")])
        #expect(
            Verify.declaration.check(StageOptions(empty)) == [
                "'issuer' is empty: leave it out to check no issuer",
                "'audience' is empty: leave it out to refuse tokens that name an audience",
                "'require' lists an empty claim name",
            ])
    }

    @Test func pythonIntText_readsWhatPythonsIntReads() {
        let cases: [(String, Double?)] = [
            ("12", 12), (" +1_000\n", 1000), ("-7", -7), ("0", 0), ("007", 7), ("1__0", nil), ("_1", nil),
            ("1_", nil), ("", nil), (" ", nil), ("+", nil), ("1.5", nil), ("1e3", nil), ("0x10", nil), ("12a", nil),
        ]
        for (text, expected) in cases {
            #expect(HS256Token.parsePythonIntText(Array(text.utf8)) == expected, "\(text)")
        }
    }

    // MARK: routerd send's messages

    @Test func diodeMessage_isByteForByteTheSeedClientsMessage() throws {
        #expect(fixtures.seedClient.count >= 3)
        for item in fixtures.seedClient {
            let made = DiodeMessage.make(
                clientID: item.clientID, text: "This is being sent via the UDP protocol. #\(item.counter)",
                secret: Array(fixtures.secret.utf8), issuedAt: item.issuedAt)
            #expect(String(decoding: made, as: UTF8.self) == item.message)
        }
    }

    @Test func diodeMessage_passes_andEachTamperIsRejectedForItsReason() throws {
        let (filter, _) = try makeFilter(["issuer": .string("udp_client")])
        let secret = Array(fixtures.secret.utf8)
        let issued = fixtures.nowSeconds
        func make(_ tamper: DiodeMessage.Tamper?) -> [UInt8] {
            DiodeMessage.make(
                clientID: 42, text: "caf\u{e9} \u{1F600} \"quoted\"\n", secret: secret, issuedAt: issued,
                tamper: tamper)
        }
        let verified = run(filter, [make(nil)] + DiodeMessage.Tamper.allCases.map(make), atSeconds: now)
        #expect(verified.passed.count == 1)
        #expect(verified.reasons == ["bad_signature", "bad_checksum", "expired", "wrong_issuer"])
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(make(nil))) as? [String: Any])
        #expect(Set(object.keys) == ["client_id", "text", "token", "checksum"])
        #expect(object["text"] as? String == "caf\u{e9} \u{1F600} \"quoted\"\n")
    }

    // MARK: Robustness

    @Test func verify_onMutatedAndTruncatedEntries_neverTrapsAndRoutesEveryEntry() throws {
        let (filter, _) = try makeFilter()
        var generator = SplitMix64(seed: 42)
        let sources = fixtures.cases.map(\.entry).filter { $0.count < 4_000 }
        var batch = Batch(receivedAtNanos: fixtures.nowSeconds * 1_000_000_000)
        for round in 0..<4_000 {
            var entry = sources[round % sources.count]
            switch generator.next() % 4 {
            case 0 where !entry.isEmpty:
                entry[Int(generator.next() % UInt64(entry.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            case 1: entry = Array(entry.prefix(Int(generator.next() % UInt64(entry.count + 1))))
            case 2 where !entry.isEmpty:
                entry.insert(
                    UInt8(truncatingIfNeeded: generator.next()), at: Int(generator.next() % UInt64(entry.count)))
            default: entry = (0..<Int(generator.next() % 40)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            }
            batch.append(entry)
        }
        let truncated = batch.append(Array(try fixtures.entry("valid_plain").prefix(20)))
        batch.events[truncated].flags.insert(.truncated)
        let verified = run(filter, batch)
        #expect(verified.passed.count + verified.rejected.count == batch.count)
        #expect(verified.rejected.last?.detail == "truncated at max_datagram_bytes")
    }

    @Test func jsonDocument_acceptsExactlyTheObjectsTheEntryScannerAccepts() throws {
        var generator = SplitMix64(seed: 7)
        var document = JSONDocument()
        let sources = fixtures.cases.map(\.entry).filter { $0.count < 4_000 && $0.count > 0 }
        for round in 0..<20_000 {
            var entry = sources[round % sources.count]
            for _ in 0..<(1 + generator.next() % 3) {
                let index = Int(generator.next() % UInt64(entry.count))
                let replacements: [UInt8] = [0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x20, 0x30, 0x2D, 0x65]
                entry[index] =
                    generator.next() % 2 == 0
                    ? replacements[Int(generator.next() % UInt64(replacements.count))]
                    : UInt8(truncatingIfNeeded: generator.next())
            }
            let (ours, scanner) = entry.withUnsafeBytes { bytes in
                let parsed = document.parse(bytes) == nil && document.rootKind == .object
                let scanned = JSONEntryScanner.scan(bytes, required: JSONRequiredKeys([])).problem == nil
                return (parsed, scanned)
            }
            #expect(ours == scanner, "\(String(decoding: entry, as: UTF8.self))")
        }
    }

    // MARK: Speed (not a test of speed: prints ns per entry when VERIFY_BENCH is set)

    @Test(.enabled(if: ProcessInfo.processInfo.environment["VERIFY_BENCH"] != nil))
    func verify_benchmark_printsNanosecondsPerSeedEntry() throws {
        let (filter, _) = try makeFilter()
        let entries = (0..<64).map { index in
            DiodeMessage.make(
                clientID: index, text: "reading \(index): temperature 21.\(index) C",
                secret: Array(fixtures.secret.utf8), issuedAt: fixtures.nowSeconds)
        }
        var batch = Batch(receivedAtNanos: fixtures.nowSeconds * 1_000_000_000)
        for entry in entries { batch.append(entry) }
        let rounds = 100_000 / entries.count
        let start = ContinuousClock.now
        var passed = 0
        for _ in 0..<rounds {
            var output = FilterOutput(portCount: 2)
            filter.process(batch, into: &output)
            passed += output.ports[0].reduce(0) { $0 + $1.count }
        }
        let elapsed = ContinuousClock.now - start
        let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        #expect(passed == rounds * entries.count)
        print("verify: \(Int(nanos / Double(passed))) ns per entry (\(entries[0].count) bytes, \(passed) entries)")
    }
}

/// A small deterministic generator for mutations.
private struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
