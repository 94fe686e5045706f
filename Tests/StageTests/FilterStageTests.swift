import Filters
import Router
import Synchronization
import Testing

// MARK: - Helpers

private let stockEntry =
    #"{"timestamp":"2026-11-22T10:00:00.123456Z","sequence":42,"app":"web","level":"ERROR","message":"db timeout","host":"node-1"}"#

private let sender = SenderAddress.ipv4(127, 0, 0, 1, port: 40_000)

/// A stock entry with the given level and sequence (or none).
private func entry(level: String?, sequence: Int?, app: String = "web") -> String {
    var fields = [#""timestamp":"2026-11-22T10:00:00Z""#, #""app":"\#(app)""#, #""message":"m""#, #""host":"h""#]
    if let level { fields.append(#""level":"\#(level)""#) }
    if let sequence { fields.append(#""sequence":\#(sequence)"#) }
    return "{" + fields.joined(separator: ",") + "}"
}

/// What a filter sent to each port for one batch.
private struct Routed {
    var ports: [[Batch]]
    var createdTrackers: [DeliveryTracker]

    /// Every event sent to `port`, with the batch it came in.
    func events(_ port: Int) -> [(batch: Batch, event: Event)] {
        ports[port].flatMap { batch in batch.events.map { (batch, $0) } }
    }

    /// The text of every event sent to `port`.
    func lines(_ port: Int) -> [String] {
        events(port).map { $0.batch.text(of: $0.event) }
    }
}

private func run(_ filter: some FilterStage, _ batch: Batch) -> Routed {
    var output = FilterOutput(portCount: type(of: filter).declaration.portNames.count)
    filter.process(batch, into: &output)
    return Routed(ports: output.ports, createdTrackers: output.createdTrackers)
}

private func text(of span: Span, in batch: Batch) -> String? {
    guard span.isPresent else { return nil }
    return batch.withBytes(of: span) { String(decoding: $0, as: UTF8.self) }
}

private func levels(_ names: String...) -> OptionValue {
    .list(names.map(OptionValue.string))
}

// MARK: - validate_json

@Suite("validate_json")
struct ValidateJSONTests {
    private func makeFilter(require: [String]? = nil) throws -> (ValidateJSON, StageCounters) {
        var options: [String: OptionValue] = [:]
        if let require { options["require"] = .list(require.map(OptionValue.string)) }
        let context = try StageHarness.context(for: ValidateJSON.self, name: "valid", options: options)
        return (try ValidateJSON(context: context), context.counters)
    }

    @Test func validateJSON_passesTheStockEntryAndExtractsItsFields() throws {
        let (filter, counters) = try makeFilter()
        let batch = Batch(lines: [stockEntry])
        let routed = run(filter, batch)
        #expect(routed.lines(0) == [stockEntry])
        #expect(routed.events(1).isEmpty)
        let (passed, event) = try #require(routed.events(0).first)
        #expect(event.level == .error)
        #expect(event.sequence == 42)
        #expect(text(of: event.host, in: passed) == "node-1")
        #expect(text(of: event.app, in: passed) == "web")
        #expect(event.flags.contains(.fieldsExtracted))
        #expect(!event.flags.contains(.hostEscaped))
        #expect(event.reason == .none)
        #expect(counters.total("invalid") == 0)
    }

    @Test func validateJSON_acceptsSeqAndHostnameAsAliases() throws {
        let (filter, _) = try makeFilter()
        let line =
            #"{"timestamp":"t","seq":7,"app":"api","level":"warn","message":"m","hostname":"node-\u0032"}"#
        let routed = run(filter, Batch(lines: [line]))
        let (passed, event) = try #require(routed.events(0).first)
        #expect(event.sequence == 7)
        #expect(event.level == .warning)
        #expect(text(of: event.host, in: passed) == #"node-\u0032"#)
        #expect(event.flags.contains(.hostEscaped))
        #expect(text(of: event.app, in: passed) == "api")
    }

    @Test func validateJSON_sendsEachRefusedEntryToInvalidWithItsReasonAndCountsIt() throws {
        let (filter, counters) = try makeFilter()
        var batch = Batch(lines: [
            stockEntry,
            #"{"timestamp":"#,
            "[1,2,3]",
            #"{"timestamp":"t","sequence":1,"app":"a","level":"INFO","message":"m"}"#,
            #"{"timestamp":"t","sequence":"1","app":"a","level":"INFO","message":"m","host":"h"}"#,
        ])
        batch.append([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D])
        let truncated = batch.append(Array(stockEntry.utf8.prefix(40)))
        batch.events[truncated].flags.insert(.truncated)
        let routed = run(filter, batch)
        #expect(routed.lines(0) == [stockEntry])
        let refused = routed.events(1)
        #expect(
            refused.map(\.event.reason.name) == [
                "not_json", "not_object", "missing_field", "wrong_type", "not_utf8", "truncated",
            ])
        #expect(refused[2].batch.detail(of: refused[2].event) == "missing field 'host'")
        let wrongType = refused[3]
        #expect(wrongType.event.reasonOffset > 0)
        #expect(
            wrongType.batch.detail(of: wrongType.event)
                == "a known field has the wrong type at byte \(wrongType.event.reasonOffset)")
        #expect(refused[5].event.reasonOffset == 40)
        for (_, event) in refused { #expect(!event.flags.contains(.fieldsExtracted)) }
        for reason in ValidateJSON.reasons {
            #expect(counters.value("invalid", label: "reason", value: reason) == 1, "\(reason)")
        }
    }

    @Test func validateJSON_whenTruncatedEntryIsOtherwiseValid_stillRefusesItAsTruncated() throws {
        let (filter, counters) = try makeFilter()
        var batch = Batch()
        let index = batch.append(Array(stockEntry.utf8))
        batch.events[index].flags.insert(.truncated)
        let routed = run(filter, batch)
        #expect(routed.events(0).isEmpty)
        #expect(routed.events(1).map(\.event.reason.name) == ["truncated"])
        #expect(counters.value("invalid", label: "reason", value: "truncated") == 1)
    }

    @Test func validateJSON_withCustomRequire_checksOnlyThoseFields() throws {
        let (filter, counters) = try makeFilter(require: ["message"])
        let routed = run(filter, Batch(lines: [#"{"message":"only"}"#, #"{"level":"ERROR"}"#]))
        #expect(routed.lines(0) == [#"{"message":"only"}"#])
        let refused = try #require(routed.events(1).first)
        #expect(refused.event.reason.name == "missing_field")
        #expect(refused.batch.detail(of: refused.event) == "missing field 'message'")
        #expect(counters.value("invalid", label: "reason", value: "missing_field") == 1)
    }

    @Test func validateJSON_withEmptyRequire_passesAnyObjectAndStillRefusesNonObjects() throws {
        let (filter, _) = try makeFilter(require: [])
        let routed = run(filter, Batch(lines: ["{}", #"{"a":[1,{"b":null}]}"#, "42", "nope"]))
        #expect(routed.lines(0) == ["{}", #"{"a":[1,{"b":null}]}"#])
        #expect(routed.events(1).map(\.event.reason.name) == ["not_object", "not_json"])
    }

    @Test func validateJSON_keepsTheBatchsTrackersOnlyWithTrackedEvents() throws {
        let (filter, _) = try makeFilter()
        var batch = Batch(lines: [stockEntry, "not json"])
        batch.events[0].flags.insert(.tracked)
        batch.trackers = [DeliveryTracker { _ in }]
        let routed = run(filter, batch)
        #expect(routed.ports[0].first?.trackers.count == 1)
        #expect(routed.ports[1].first?.trackers.isEmpty == true)
    }
}

// MARK: - match_level

@Suite("match_level")
struct MatchLevelTests {
    private static let mixed = [
        entry(level: "DEBUG", sequence: 1), entry(level: "info", sequence: 2), entry(level: "Warn", sequence: 3),
        entry(level: "WARNING", sequence: 4), entry(level: "error", sequence: 5), entry(level: "ERR", sequence: 6),
        entry(level: "CRITICAL", sequence: 7), entry(level: "fatal", sequence: 8), entry(level: "TRACE", sequence: 9),
        entry(level: nil, sequence: 10), "not json",
    ]

    private func makeFilter(_ options: [String: OptionValue]) throws -> MatchLevel {
        try MatchLevel(context: try StageHarness.context(for: MatchLevel.self, name: "errors", options: options))
    }

    /// The sequences sent to each port, read back from the entries' text.
    private func sequences(_ routed: Routed, _ port: Int) -> [Int] {
        routed.lines(port).compactMap { line in
            guard let range = line.range(of: #""sequence":"#) else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// Routes `mixed` both raw (the filter scans levels itself) and after validate_json (it reads the extracted
    /// level), and checks both give the same split.
    private func route(_ options: [String: OptionValue]) throws -> (matched: [Int], unmatched: [Int]) {
        let filter = try makeFilter(options)
        let raw = run(filter, Batch(lines: MatchLevelTests.mixed))
        let validator = try ValidateJSON(
            context: try StageHarness.context(for: ValidateJSON.self, options: ["require": .list([])]))
        let validated = run(validator, Batch(lines: MatchLevelTests.mixed))
        var extracted = run(filter, try #require(validated.ports[0].first))
        for refused in validated.ports[1] { extracted.ports[1] += run(filter, refused).ports[1] }
        #expect(sequences(raw, 0) == sequences(extracted, 0))
        #expect(raw.lines(1).count == MatchLevelTests.mixed.count - raw.lines(0).count)
        return (sequences(raw, 0), sequences(raw, 1))
    }

    @Test func matchLevel_withLevels_sendsListedLevelsToDefaultCaseInsensitively() throws {
        let split = try route(["levels": levels("ERROR", "CRITICAL")])
        #expect(split.matched == [5, 6, 7, 8])
        #expect(split.unmatched == [1, 2, 3, 4, 9, 10])
    }

    @Test func matchLevel_withAliasesInLevels_matchesTheCanonicalLevel() throws {
        let split = try route(["levels": levels("WARN", "FATAL")])
        #expect(split.matched == [3, 4, 7, 8])
        let lowerCase = try route(["levels": levels("err")])
        #expect(lowerCase.matched == [5, 6])
    }

    @Test func matchLevel_withMinLevel_matchesThatLevelAndEveryMoreSevereOne() throws {
        #expect(try route(["min_level": .string("WARNING")]).matched == [3, 4, 5, 6, 7, 8])
        #expect(try route(["min_level": .string("ERR")]).matched == [5, 6, 7, 8])
        #expect(try route(["min_level": .string("FATAL")]).matched == [7, 8])
    }

    @Test func matchLevel_sendsUnknownAndMissingLevelsToUnmatchedEvenAtTheLowestMinimum() throws {
        let split = try route(["min_level": .string("DEBUG")])
        #expect(split.matched == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(split.unmatched == [9, 10])
    }

    @Test func matchLevel_declarationCheck_wantsExactlyOneOfLevelsAndMinLevel() {
        let check = MatchLevel.declaration.check
        #expect(check(StageOptions()) == ["missing 'levels' or 'min_level': say which levels match"])
        #expect(
            check(StageOptions(["levels": levels("ERROR"), "min_level": .string("INFO")]))
                == ["give either 'levels' or 'min_level', not both"])
        #expect(check(StageOptions(["levels": levels("ERROR")])).isEmpty)
        #expect(check(StageOptions(["min_level": .string("INFO")])).isEmpty)
    }
}

// MARK: - ack

/// A reply channel that records what it was asked to send.
private final class RecordingReplyChannel: ReplyChannel {
    private let sent = Mutex<[(payload: String, to: SenderAddress)]>([])

    func sendReplies(_ replies: [(payload: [UInt8], to: SenderAddress)]) {
        sent.withLock { sent in
            for reply in replies { sent.append((String(decoding: reply.payload, as: UTF8.self), reply.to)) }
        }
    }

    var payloads: [String] { sent.withLock { $0.map(\.payload) } }
    var addresses: [SenderAddress] { sent.withLock { $0.map(\.to) } }
}

@Suite("ack")
struct AckTests {
    private func makeFilter(_ options: [String: OptionValue] = [:]) throws -> (Ack, StageCounters) {
        let context = try StageHarness.context(for: Ack.self, name: "acker", options: options)
        return (try Ack(context: context), context.counters)
    }

    /// A batch from `sender` (or from no socket for the entries listed in `anonymous`), with a reply channel,
    /// run through validate_json first when `validated`.
    private func batch(
        _ lines: [String], channel: (any ReplyChannel)?, anonymous: Set<Int> = [], validated: Bool = true
    ) throws -> Batch {
        var batch = Batch(replyChannel: channel)
        for (index, line) in lines.enumerated() {
            batch.append(Array(line.utf8), sender: anonymous.contains(index) ? .none : sender)
        }
        guard validated else { return batch }
        let validator = try ValidateJSON(
            context: try StageHarness.context(for: ValidateJSON.self, options: ["require": .list([])]))
        return try #require(run(validator, batch).ports[0].first)
    }

    @Test func ack_tracksOnlyMatchingEntriesWithASequenceFromASender() throws {
        let (filter, _) = try makeFilter()
        let channel = RecordingReplyChannel()
        let input = try batch(
            [
                entry(level: "ERROR", sequence: 1), entry(level: "ERROR", sequence: nil),
                entry(level: "INFO", sequence: 3), entry(level: "ERROR", sequence: 4), entry(level: "err", sequence: 5),
            ], channel: channel, anonymous: [3])
        let routed = run(filter, input)
        let passed = try #require(routed.ports[0].first)
        #expect(routed.ports[0].count == 1)
        #expect(passed.count == 5)
        #expect(passed.events.map { $0.flags.contains(.tracked) } == [true, false, false, false, true])
        #expect(passed.trackers.count == 1)
        #expect(routed.createdTrackers.count == 1)
        #expect(passed.trackers.first === routed.createdTrackers.first)
        #expect(channel.payloads.isEmpty)
    }

    @Test func ack_withNothingToAcknowledge_passesTheBatchUnchanged() throws {
        let (filter, _) = try makeFilter()
        let channel = RecordingReplyChannel()
        let input = try batch(
            [entry(level: "INFO", sequence: 1), entry(level: "ERROR", sequence: nil)], channel: channel)
        let routed = run(filter, input)
        let passed = try #require(routed.ports[0].first)
        #expect(passed.trackers.isEmpty)
        #expect(routed.createdTrackers.isEmpty)
        #expect(passed.events.allSatisfy { !$0.flags.contains(.tracked) })
    }

    @Test func ack_withoutAReplyChannel_tracksNothing() throws {
        let (filter, _) = try makeFilter()
        let input = try batch([entry(level: "ERROR", sequence: 1)], channel: nil)
        let routed = run(filter, input)
        #expect(routed.ports[0].first?.trackers.isEmpty == true)
        #expect(routed.createdTrackers.isEmpty)
    }

    @Test func ack_onEntriesNoValidatorRead_findsLevelAndSequenceItself() throws {
        let (filter, _) = try makeFilter(["levels": levels("WARNING", "ERROR")])
        let channel = RecordingReplyChannel()
        let input = try batch(
            [entry(level: "WARN", sequence: 11), entry(level: "DEBUG", sequence: 12), "not json"], channel: channel,
            validated: false)
        let routed = run(filter, input)
        let passed = try #require(routed.ports[0].first)
        #expect(passed.events.map { $0.flags.contains(.tracked) } == [true, false, false])
        let tracker = try #require(routed.createdTrackers.first)
        tracker.releaseCreationHold()
        #expect(channel.payloads == [#"{"ack":false,"sequence":11,"status":"failed","reason":"no output took it"}"#])
    }

    @Test func ack_whenEveryOutputWrote_repliesStoredToEachSender() throws {
        let (filter, counters) = try makeFilter(["levels": levels("ERROR", "CRITICAL")])
        let channel = RecordingReplyChannel()
        let input = try batch(
            [entry(level: "ERROR", sequence: 1), entry(level: "CRITICAL", sequence: 2)], channel: channel)
        let routed = run(filter, input)
        let tracker = try #require(routed.createdTrackers.first)
        tracker.beginDelivery()
        tracker.beginDelivery()
        tracker.releaseCreationHold()
        tracker.settle(.written)
        #expect(channel.payloads.isEmpty)
        tracker.settle(.written)
        #expect(
            channel.payloads == [
                #"{"ack":true,"sequence":1,"status":"stored"}"#, #"{"ack":true,"sequence":2,"status":"stored"}"#,
            ])
        #expect(channel.addresses == [sender, sender])
        #expect(counters.value("acks_sent") == 2)
    }

    @Test func ack_countsAcksNacksAndNotRouted() throws {
        let (filter, counters) = try makeFilter()
        let channel = RecordingReplyChannel()
        for outcome in [WriteResult.written, .failed("disk full")] {
            let routed = run(filter, try batch([entry(level: "ERROR", sequence: 1)], channel: channel))
            let tracker = try #require(routed.createdTrackers.first)
            tracker.beginDelivery()
            tracker.releaseCreationHold()
            tracker.settle(outcome)
        }
        let unrouted = run(filter, try batch([entry(level: "ERROR", sequence: 2)], channel: channel))
        try #require(unrouted.createdTrackers.first).releaseCreationHold()
        #expect(counters.value("acks_sent") == 1)
        #expect(counters.value("nacks_sent") == 2)
        #expect(counters.value("not_routed") == 1)
        #expect(
            channel.payloads == [
                #"{"ack":true,"sequence":1,"status":"stored"}"#,
                #"{"ack":false,"sequence":1,"status":"failed","reason":"disk full"}"#,
                #"{"ack":false,"sequence":2,"status":"failed","reason":"no output took it"}"#,
            ])
    }

    @Test func ack_whenAnOutputFails_repliesWithTheEscapedReason() throws {
        let (filter, _) = try makeFilter()
        let channel = RecordingReplyChannel()
        let routed = run(filter, try batch([entry(level: "ERROR", sequence: 9)], channel: channel))
        let tracker = try #require(routed.createdTrackers.first)
        tracker.beginDelivery()
        tracker.beginDelivery()
        tracker.releaseCreationHold()
        tracker.settle(.failed("cannot write '/var/log/a \"b\".log': No space left on device"))
        tracker.settle(.written)
        #expect(
            channel.payloads == [
                #"{"ack":false,"sequence":9,"status":"failed","reason":"cannot write '/var/log/a \"b\".log': No space left on device"}"#
            ])
    }
}
