import Filters
import Router
import Synchronization
import Testing

// MARK: - Helpers

private let sender = SenderAddress.ipv4(127, 0, 0, 1, port: 40_000)

/// The plan of `yaml`, or the rendered errors.
private func check(_ yaml: String) -> Result<RouterPlan, ConfigErrors> {
    do {
        let registry = try StageRegistry(StageHarness.builtin)
        return .success(
            try RouterConfig.parse(
                ConfigSource(path: "router.yaml", text: yaml), environment: ["REGION": "eu-1"], registry: registry))
    } catch let error as ConfigErrors {
        return .failure(error)
    } catch {
        Issue.record("unexpected \(error)")
        return .failure(ConfigErrors([]))
    }
}

private func errors(_ yaml: String) -> String {
    switch check(yaml) {
    case .success: return "(no errors)"
    case .failure(let errors): return errors.description
    }
}

/// A config with one filter `f` of `type` with `options` (indented YAML lines), read by one output from `reads`.
private func config(_ type: String, _ options: String, reads: [String]) -> String {
    """
    inputs:
      in: {type: udp, port: 0}
    filters:
      f:
        type: \(type)
        inputs: [in]
    \(options.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    outputs:
      out: {type: stdout, inputs: [\(reads.joined(separator: ", "))]}

    """
}

/// The stage built from a checked config, as the runtime builds it.
private func build<S: FilterStage>(_ type: S.Type, _ options: String, reads: [String]) throws -> (
    S, [String], StageCounters
) {
    let plan = try check(config(S.declaration.type, options, reads: reads)).get()
    let stage = try #require(plan.stage("f"))
    let ports = S.declaration.portNames(for: stage.options)
    let context = try StageHarness.context(for: S.self, name: "f", options: stage.options.values)
    return (try S(context: context), ports, context.counters)
}

/// The text of each entry of `lines` that `filter` sent to each port, by port name.
private func run(_ filter: some FilterStage, ports: [String], _ lines: [String]) -> [String: [String]] {
    var batch = Batch(receivedAtNanos: 1_795_000_000_123_456_000)
    for line in lines { batch.append(Array(line.utf8), sender: sender) }
    var output = FilterOutput(portCount: ports.count)
    filter.process(batch, into: &output)
    var result: [String: [String]] = [:]
    for (port, batches) in output.ports.enumerated() {
        for portBatch in batches { result[ports[port], default: []] += portBatch.events.map { portBatch.text(of: $0) } }
    }
    return result
}

private let teams = """
    routes:
      billing: { field: app, equals: billing }
      slow:    { field: duration_ms, greater_than: 1000 }
      auth:    { field: message, matches: "(?i)login failed" }
      edge:    { field: host, in: [edge-1, edge-2] }
      traced:  { all: [ { field: trace.id, exists: true }, { not: { field: level, in: [DEBUG] } } ] }
    """

private let teamReads = ["f.billing", "f.slow", "f.auth", "f.edge", "f.traced", "f.unmatched"]

// MARK: - route

@Suite("route")
struct RouteTests {
    @Test func route_sendsEachEntryToEveryPortWhoseConditionItMeets() throws {
        let (route, ports, _) = try build(Route.self, teams, reads: teamReads)
        let billingSlow = #"{"app":"billing","duration_ms":1500,"message":"ok"}"#
        let auth = #"{"app":"web","message":"LOGIN FAILED for bob","host":"edge-2"}"#
        let traced = #"{"trace":{"id":"f00d"},"level":"INFO"}"#
        let tracedDebug = #"{"trace":{"id":"f00d"},"level":"DEBUG"}"#
        let escaped = #"{"app":"bil\u006cing","duration_ms":1000}"#
        let notJSON = "not json"
        let routed = run(route, ports: ports, [billingSlow, auth, traced, tracedDebug, escaped, notJSON])
        #expect(routed["billing"] == [billingSlow, escaped])
        #expect(routed["slow"] == [billingSlow])
        #expect(routed["auth"] == [auth])
        #expect(routed["edge"] == [auth])
        #expect(routed["traced"] == [traced])
        #expect(routed["unmatched"] == [tracedDebug, notJSON])
        #expect(routed["default"] == nil)
    }

    @Test func route_withModeFirst_sendsAnEntryOnlyToTheFirstMatchingRoute() throws {
        let (route, ports, _) = try build(Route.self, teams + "\nmode: first", reads: teamReads)
        let entry = #"{"app":"billing","duration_ms":1500,"host":"edge-1"}"#
        let routed = run(route, ports: ports, [entry])
        #expect(routed["billing"] == [entry])
        #expect(routed["slow"] == nil && routed["edge"] == nil)
    }

    @Test func route_comparesNumbersAsNumbersAndStringsOnlyAsStrings() throws {
        let options = """
            routes:
              one: { field: n, equals: 1 }
              big: { field: n, less_than: -2.5e1 }
              word: { field: n, prefix: "1" }
              flag: { field: ok, equals: true }
              nothing: { field: gone, not_equals: x }
            """
        let (route, ports, _) = try build(
            Route.self, options, reads: ["f.one", "f.big", "f.word", "f.flag", "f.nothing", "f.unmatched"])
        let routed = run(route, ports: ports, [#"{"n":1.0}"#, #"{"n":-30}"#, #"{"n":"1x","ok":true}"#])
        #expect(routed["one"] == [#"{"n":1.0}"#])
        #expect(routed["big"] == [#"{"n":-30}"#])
        #expect(routed["word"] == [#"{"n":"1x","ok":true}"#])
        #expect(routed["flag"] == [#"{"n":"1x","ok":true}"#])
        #expect(routed["nothing"]?.count == 3)
    }

    @Test func route_whenARegularExpressionDoesNotCompile_reportsItWhereItIsWritten() {
        let text = errors(
            config("route", "routes:\n  auth: { field: message, matches: \"(login\" }", reads: ["f.auth"]))
        #expect(
            text == """
                router.yaml:8:40: error: filters.f: route 'auth': 'matches' is not a valid regular expression: \
                missing closing parenthesis (at offset 6)
                      auth: { field: message, matches: "(login" }
                                                       ^
                """)
    }

    @Test func route_whenAConditionIsUnknown_suggestsTheClosestOne() {
        let text = errors(config("route", "routes:\n  billing: { field: app, equal: billing }", reads: ["f.billing"]))
        #expect(
            text == """
                router.yaml:8:30: error: filters.f: route 'billing': unknown condition 'equal' (did you mean 'equals'?)
                      billing: { field: app, equal: billing }
                                             ^
                """)
    }

    @Test func route_whenAPortIsNotRead_reportsTheRoute() {
        let text = errors(
            config(
                "route", "routes:\n  billing: { field: app, equals: billing }\n  web: { field: app, equals: web }",
                reads: ["f.billing"]))
        #expect(
            text == """
                router.yaml:9:7: error: filters.f: port 'f.web' is not read: no filter or output lists it in its \
                inputs, so the entries it takes would be lost
                      web: { field: app, equals: web }
                      ^
                """)
    }

    @Test func route_whenTheBareNameIsRead_namesItsPorts() {
        let text = errors(
            config("route", "routes:\n  billing: { field: app, equals: billing }", reads: ["f", "f.billing"]))
        #expect(
            text == """
                router.yaml:10:32: error: outputs.out: 'f' sends every entry to a named port; read one of: \
                f.unmatched, f.billing
                  out: {type: stdout, inputs: [f, f.billing]}
                                               ^
                """)
    }

    @Test func route_whenATestHasNoFieldOrANumberIsNotOne_saysSo() {
        let text = errors(
            config(
                "route", "routes:\n  a: { equals: x }\n  b: { field: n, greater_than: many }\n  c: { field: n }",
                reads: ["f.a", "f.b", "f.c"]))
        #expect(
            text == """
                router.yaml:8:12: error: filters.f: route 'a': 'equals' needs a 'field' to test
                      a: { equals: x }
                           ^
                router.yaml:9:36: error: filters.f: route 'b': 'greater_than' must be a number such as 1000 or 0.5, \
                got 'many'
                      b: { field: n, greater_than: many }
                                                   ^
                router.yaml:10:12: error: filters.f: route 'c': field 'n' has no test; give one of: equals, \
                not_equals, in, prefix, suffix, contains, matches, exists, greater_than, less_than
                      c: { field: n }
                           ^
                """)
    }
}

// MARK: - modify

@Suite("modify")
struct ModifyTests {
    @Test func modify_changesOnlyWhatItIsToldAndKeepsEveryOtherByte() throws {
        let options = """
            set: { env: prod, meta.region: "${REGION}", retries: 3, quoted: "3" }
            rename: { hostname: host }
            remove: [token]
            redact: [ { field: message, pattern: "[0-9]{4}", replacement: "#" } ]
            add_received_at: received_at
            add_sender: sender
            """
        let (modify, ports, counters) = try build(Modify.self, options, reads: ["f", "f.failed"])
        let entry = #"{ "hostname" : "n1", "token":"s3cr3t", "message":"card 4111 2222 x",  "n": 1.50 }"#
        let routed = run(modify, ports: ports, [entry])
        #expect(
            routed["default"] == [
                #"{ "host" : "n1", "message":"card # # x",  "n": 1.50,"env":"prod","meta":{"region":"eu-1"},"#
                    + #""retries":3,"quoted":"3","received_at":"2026-11-18T11:06:40.123456Z","sender":"127.0.0.1:40000" }"#
            ])
        #expect(counters.value("changed") == 1)
    }

    @Test func modify_sendsEntriesItCannotChangeToFailedUnchangedWithTheReason() throws {
        let options = "set: { meta.region: eu }\nredact: [ { field: message, pattern: x } ]"
        let (modify, ports, counters) = try build(Modify.self, options, reads: ["f", "f.failed"])
        let notObject = "[1,2]"
        let metaString = #"{"meta":"flat"}"#
        let messageNumber = #"{"message":7}"#
        let routed = run(modify, ports: ports, [notObject, metaString, messageNumber, "{}"])
        #expect(routed["failed"] == [notObject, metaString, messageNumber])
        #expect(routed["default"] == [#"{"meta":{"region":"eu"}}"#])
        #expect(counters.value("failed", label: "reason", value: "not_object") == 1)
        #expect(counters.value("failed", label: "reason", value: "wrong_type") == 2)
    }

    @Test func modify_keepsSenderSequenceAndTrackingOfChangedEntries() throws {
        let (modify, _, _) = try build(Modify.self, "set: { env: prod }", reads: ["f", "f.failed"])
        var batch = Batch()
        batch.append(Array(#"{"sequence":9,"level":"ERROR"}"#.utf8), sender: sender)
        batch.events[0].sequence = 9
        batch.events[0].flags = [.tracked, .fieldsExtracted]
        let tracker = DeliveryTracker { _ in }
        batch.trackers = [tracker]
        var output = FilterOutput(portCount: 2)
        modify.process(batch, into: &output)
        let changed = try #require(output.ports[0].first)
        #expect(changed.events[0].sender == sender)
        #expect(changed.events[0].sequence == 9)
        #expect(changed.events[0].flags.contains(.tracked))
        #expect(changed.trackers.count == 1)
        #expect(changed.text(of: changed.events[0]) == #"{"sequence":9,"level":"ERROR","env":"prod"}"#)
    }

    @Test func modify_whenARedactPatternDoesNotCompile_reportsItWhereItIsWritten() {
        let text = errors(config("modify", "redact: [ { field: m, pattern: \"[a-\" } ]", reads: ["f"]))
        #expect(
            text == """
                router.yaml:7:36: error: filters.f: option 'redact': 'pattern' is not a valid regular expression: \
                missing terminating ] for character class (at offset 3)
                    redact: [ { field: m, pattern: "[a-" } ]
                                                   ^
                """)
    }
}

// MARK: - sample and throttle

@Suite("sample and throttle")
struct SampleThrottleTests {
    @Test func sample_keepsOneInRatePerKeyAndNeverSamplesOutKeepLevels() throws {
        let (sample, ports, counters) = try build(Sample.self, "rate: 3\nkey: app", reads: ["f", "f.sampled_out"])
        var lines: [String] = []
        for index in 0..<6 { lines.append(#"{"app":"a","level":"INFO","n":\#(index)}"#) }
        lines.append(#"{"app":"b","level":"INFO"}"#)
        lines.append(#"{"app":"a","level":"ERROR"}"#)
        let routed = run(sample, ports: ports, lines)
        #expect(
            routed["default"] == [lines[0], lines[3], lines[6], lines[7]])
        #expect(routed["sampled_out"]?.count == 4)
        #expect(counters.value("sampled_out") == 4)
    }

    @Test func throttle_letsLimitPerKeyThroughAndCountsTheExcessByKey() throws {
        let (throttle, ports, counters) = try build(
            Throttle.self, "limit: 2\nwindow: 1h\nkey: host", reads: ["f", "f.throttled"])
        let lines = (0..<5).map { #"{"host":"h1","n":\#($0)}"# } + [#"{"host":"h2"}"#, #"{"n":9}"#]
        let routed = run(throttle, ports: ports, lines)
        #expect(routed["default"] == [lines[0], lines[1], lines[5], lines[6]])
        #expect(routed["throttled"] == [lines[2], lines[3], lines[4]])
        #expect(counters.value("throttled", label: "key", value: "h1") == 3)
    }

    @Test func throttle_withDropAndBySender_dropsTheExcessAndCountsIt() throws {
        let (throttle, ports, counters) = try build(
            Throttle.self, "limit: 1\nwindow: 1h\nby_sender: true\ndrop: true", reads: ["f"])
        let routed = run(throttle, ports: ports, [#"{"a":1}"#, #"{"a":2}"#])
        #expect(routed["default"] == [#"{"a":1}"#])
        #expect(routed["throttled"] == nil)
        #expect(counters.value("events_dropped", label: "reason", value: "throttled") == 1)
        #expect(counters.value("throttled", label: "key", value: "127.0.0.1:40000") == 1)
    }

    @Test func throttle_ranksTheBusiestKeysForStats() throws {
        let (throttle, ports, counters) = try build(
            Throttle.self, "limit: 2\nwindow: 1h\nkey: host", reads: ["f", "f.throttled"])
        let hosts = Array(repeating: "a", count: 5) + Array(repeating: "b", count: 12) + Array(repeating: "c", count: 8)
        _ = run(throttle, ports: ports, hosts.map { #"{"host":"\#($0)"}"# })
        _ = run(throttle, ports: ports, [#"{"host":"a"}"#, #"{"n":1}"#, #"{"n":2}"#, #"{"n":3}"#])
        let ranking = try #require(counters.rankings().first { $0.name == "throttled" })
        #expect(ranking.entries.map(\.value) == ["b", "c", "a", "(no key)"])
        #expect(ranking.entries.map(\.count) == [10, 6, 4, 1])
    }

    @Test func throttle_withDrop_tellsTheTrackerWhichEntriesItDropped() throws {
        let (throttle, ports, _) = try build(Throttle.self, "limit: 1\nwindow: 1h\ndrop: true", reads: ["f"])
        let reported = Mutex<[String?]>([])
        let tracker = DeliveryTracker { _, dropped in
            reported.withLock { $0 = (1...3).map { dropped.reason(sender: sender, sequence: Int64($0)) } }
        }
        var batch = Batch(receivedAtNanos: 1_795_000_000_123_456_000)
        for sequence in 1...3 {
            batch.append(Array(#"{"sequence":\#(sequence)}"#.utf8), sender: sender)
            batch.events[sequence - 1].flags.insert(.tracked)
        }
        batch.trackers = [tracker]
        var output = FilterOutput(portCount: ports.count)
        throttle.process(batch, into: &output)
        tracker.releaseCreationHold()
        #expect(reported.withLock { $0 } == [nil, "throttled", "throttled"])
    }

    @Test func throttle_withKeyAndBySender_isAConfigError() {
        let text = errors(config("throttle", "limit: 1\nkey: host\nby_sender: true", reads: ["f"]))
        #expect(
            text == """
                router.yaml:4:3: error: filters.f: give either 'key' or 'by_sender: true', not both
                  f:
                  ^
                """)
    }
}
