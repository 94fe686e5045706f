import Router
import Testing

// MARK: - Test-only stage kinds, registered exactly like built-in ones

/// An input with a port and a one-way switch (like `udp`): it can reply unless `one_way` is set.
private final class GraphSource: InputStage {
    static let declaration = StageDeclaration(
        type: "test_source",
        summary: "Test input.",
        options: [
            OptionDeclaration("port", .integer(0...65535), .defaultValue(.integer(5514)), "Port."),
            OptionDeclaration("one_way", .bool, .defaultValue(.bool(false)), "Never replies."),
        ],
        canReply: { options in !((try? options.bool("one_way")) ?? false) }
    )

    init(context: StageContext) throws {}
    func run(_ emitter: InputEmitter) throws {}
    func requestStop() {}
}

/// A filter with an extra port and one option of every scalar type, plus a check between two options.
private final class GraphSplit: FilterStage {
    static let declaration = StageDeclaration(
        type: "test_split",
        summary: "Test filter with a second port.",
        options: [
            OptionDeclaration("max_size", .size(1...(1 << 30)), .defaultValue(.size(10 << 20)), "A size."),
            OptionDeclaration(
                "flush_interval", .duration(.milliseconds(1)...(.seconds(3600))), .defaultValue(.duration(.seconds(5))),
                "A duration."),
            OptionDeclaration("format", .oneOf(["raw", "dead_letter"]), .defaultValue(.string("raw")), "An enum."),
            OptionDeclaration("label", .string, .optional, "An optional string."),
            OptionDeclaration("low", .integer(0...100), .defaultValue(.integer(0)), "Lower bound."),
            OptionDeclaration("high", .integer(0...100), .defaultValue(.integer(100)), "Upper bound."),
        ],
        ports: [PortDeclaration("rejected", "Refused events.")],
        check: { options in
            let low = (try? options.integer("low")) ?? 0
            let high = (try? options.integer("high")) ?? 0
            return low > high ? ["'low' (\(low)) must not be greater than 'high' (\(high))"] : []
        }
    )

    init(context: StageContext) throws {}
    func process(_ batch: Batch, into output: inout FilterOutput) { output.emit(batch) }
}

/// A filter that, like `ack`, needs every input upstream to be able to reply.
private final class GraphAck: FilterStage {
    static let declaration = StageDeclaration(
        type: "test_ack", summary: "Test acknowledging filter.", needsReplyChannel: true)

    init(context: StageContext) throws {}
    func process(_ batch: Batch, into output: inout FilterOutput) { output.emit(batch) }
}

/// An output with a required option and a size option.
private final class GraphSink: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(
        type: "test_sink",
        summary: "Test output.",
        options: [
            OptionDeclaration("path", .string, .required, "Where."),
            OptionDeclaration("max_size", .size(1...(1 << 40)), .defaultValue(.size(1 << 20)), "A size."),
        ]
    )

    init(context: StageContext) throws {}
    func write(_ group: WriteGroup) -> WriteOutcome { .written }
}

/// An output without options.
private final class GraphNull: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(type: "test_null", summary: "Test output that discards.")

    init(context: StageContext) throws {}
    func write(_ group: WriteGroup) -> WriteOutcome { .written }
}

/// An output with a port of its own, like `postgres` and its `rejected` port.
private final class GraphStore: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(
        type: "test_store", summary: "Test output with a port and a mapping option.",
        options: [OptionDeclaration("columns", .mapping(.string), .optional, "Column to field.")],
        ports: [PortDeclaration("rejected", "Entries the store refused.")])

    init(context: StageContext) throws {}
    func write(_ group: WriteGroup) -> WriteOutcome { .written }
}

private func graphRegistry() throws -> StageRegistry {
    try StageRegistry([
        GraphSource.self, GraphSplit.self, GraphAck.self, GraphSink.self, GraphNull.self, GraphStore.self,
    ])
}

/// Checks `yaml` as `router.yaml` and returns the whole rendered error text, or nil when it is accepted.
private func renderedErrors(_ yaml: String, environment: [String: String] = [:]) -> String? {
    let registry: StageRegistry
    do {
        registry = try graphRegistry()
    } catch {
        return "the test registry cannot be built: \(error)"
    }
    do {
        _ = try RouterConfig.parse(
            ConfigSource(path: "router.yaml", text: yaml), environment: environment, registry: registry)
        return nil
    } catch {
        return error.description
    }
}

/// Checks `yaml` as `router.yaml`, recording the rendered errors as the test's failure if it is refused.
private func plan(
    _ yaml: String, environment: [String: String] = [:], sourceLocation: Testing.SourceLocation = #_sourceLocation
) throws -> RouterPlan {
    let registry = try graphRegistry()
    do {
        return try RouterConfig.parse(
            ConfigSource(path: "router.yaml", text: yaml), environment: environment, registry: registry)
    } catch {
        Issue.record("unexpected config errors:\n\(error.description)", sourceLocation: sourceLocation)
        throw error
    }
}

// MARK: - Errors

@Suite("graph check: errors")
struct GraphCheckErrorTests {
    @Test func graph_whenSectionIsMisspelt_suggestsClosestSection() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filtres: {}
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:4:1: error: unknown section 'filtres' (did you mean 'filters'?)
                filtres: {}
                ^
                """)
    }

    @Test func graph_whenABufferBlockIsWrong_reportsEveryMistakeAtItsPlace() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log
                buffer:
                  type: disk
                  max_sise: 1GiB
                  sync: sometimes
                  when_full: wait
              other:
                type: test_sink
                inputs: [source]
                path: /var/log/y.log
                buffer: {type: memory, max_size: 2GiB}

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:11:7: error: outputs.sink: unknown buffer option 'max_sise' (did you mean 'max_size'?)
                      max_sise: 1GiB
                      ^
                router.yaml:12:13: error: outputs.sink: buffer option 'sync' must be every_batch, none or a duration: \
                invalid duration 'sometimes' (write a number and a unit, e.g. 5s or 250ms)
                      sync: sometimes
                            ^
                router.yaml:13:18: error: outputs.sink: buffer option 'when_full' must be one of block, drop_newest, \
                got 'wait'
                      when_full: wait
                                 ^
                router.yaml:18:28: error: outputs.other: buffer option 'max_size' applies to type: disk only; the \
                memory buffer is the queue (queue_max_events, when_full)
                    buffer: {type: memory, max_size: 2GiB}
                                           ^
                """)
    }

    @Test func graph_whenFileHasDuplicateKey_reportsEveryOtherErrorToo() {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: 5514
                port: 5515
            outputs:
              sink:
                type: test_sink
                inputs: [source, nowhere]
                path: /var/log/x.log
                max_sise: 1MiB

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:5: error: duplicate key 'port' (first defined at line 4)
                    port: 5515
                    ^
                router.yaml:9:22: error: outputs.sink: unknown upstream 'nowhere'; stages that can feed it: source
                    inputs: [source, nowhere]
                                     ^
                router.yaml:11:5: error: outputs.sink: unknown option 'max_sise' (did you mean 'max_size'?)
                    max_sise: 1MiB
                    ^
                """)
    }

    @Test func graph_whenInterpolationFails_reportsItOnceAndTheOtherErrors() {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: "${PORT:?set PORT}"
            outputs:
              sink:
                type: tset_sink
                inputs: [source]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:4:11: error: PORT: set PORT
                    port: "${PORT:?set PORT}"
                          ^
                router.yaml:7:11: error: outputs.sink: unknown output type 'tset_sink' (did you mean 'test_sink'?)
                    type: tset_sink
                          ^
                """)
    }

    @Test func graph_whenSectionIsUnknown_listsTheSections() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log
            tracing: {}

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:9:1: error: unknown section 'tracing'; sections are: inputs, filters, outputs, router
                tracing: {}
                ^
                """)
    }

    @Test func graph_whenStageTypeIsMisspelt_suggestsClosestType() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_snk
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:6:11: error: outputs.sink: unknown output type 'test_snk' (did you mean 'test_sink'?)
                    type: test_snk
                          ^
                """)
    }

    @Test func graph_whenStageTypeIsUnknownAndNothingIsClose_listsTheTypesOfItsRole() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: kafka
                inputs: [source]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:6:11: error: outputs.sink: unknown output type 'kafka'; output types are: test_sink, \
                test_null, test_store
                    type: kafka
                          ^
                """)
    }

    @Test func graph_whenTypeIsDeclaredInTheWrongSection_namesTheRightSection() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              tee:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log
            outputs:
              sink:
                type: test_split
                inputs: [source]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:6:11: error: filters.tee: 'test_sink' is an output stage, not a filter; declare it under \
                outputs
                    type: test_sink
                          ^
                router.yaml:11:11: error: outputs.sink: 'test_split' is a filter stage, not an output; declare it \
                under filters
                    type: test_split
                          ^
                """)
    }

    @Test func graph_whenTypeIsMissing_reportsItAtTheStageName() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:3: error: outputs.sink: missing required option 'type'
                  sink:
                  ^
                """)
    }

    @Test func graph_whenOptionIsMisspelt_suggestsClosestOption() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
                max_sise: 10MiB
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:8:5: error: filters.split: unknown option 'max_sise' (did you mean 'max_size'?)
                    max_sise: 10MiB
                    ^
                """)
    }

    @Test func graph_whenOptionIsUnknownAndNothingIsClose_listsTheAllowedOptions() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log
                colour: red

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:9:5: error: outputs.sink: unknown option 'colour'; allowed: type, path, max_size, inputs, \
                queue_max_events, when_full, reconnect_backoff_max, drain_timeout, buffer
                    colour: red
                    ^
                """)
    }

    @Test func graph_whenIntegerOptionIsGivenText_reportsTheTypeAtTheValue() {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: abc
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:4:11: error: inputs.source: option 'port' must be an integer, got 'abc'
                    port: abc
                          ^
                """)
    }

    @Test func graph_whenStringOptionIsGivenAMapping_reportsTheShape() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: {dir: /var/log}

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:8:11: error: outputs.sink: option 'path' must be a string, got a mapping
                    path: {dir: /var/log}
                          ^
                """)
    }

    @Test func graph_whenValuesAreOutOfRange_reportsEachRangeInItsUnit() {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: 70000
            filters:
              split:
                type: test_split
                inputs: [source]
                max_size: 2GiB
                flush_interval: 2h
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:4:11: error: inputs.source: option 'port' must be between 0 and 65535, got 70000
                    port: 70000
                          ^
                router.yaml:9:15: error: filters.split: option 'max_size' must be between 1B and 1GiB, got 2GiB
                    max_size: 2GiB
                              ^
                router.yaml:10:21: error: filters.split: option 'flush_interval' must be between 1ms and 1h, got 2h
                    flush_interval: 2h
                                    ^
                """)
    }

    @Test func graph_whenDurationHasNoUnit_explainsWhichUnitsExist() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
                flush_interval: 5
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:8:21: error: filters.split: option 'flush_interval' must be a duration such as 5s, 250ms \
                or 1m: missing unit in '5' (use e.g. 5s or 250ms)
                    flush_interval: 5
                                    ^
                """)
    }

    @Test func graph_whenEnumValueIsMisspelt_suggestsItAndListsTheAllowedValues() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
                format: dead_leter
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log
                when_full: json

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:8:13: error: filters.split: option 'format' must be one of: raw, dead_letter; got \
                'dead_leter' (did you mean 'dead_letter'?)
                    format: dead_leter
                            ^
                router.yaml:14:16: error: outputs.sink: option 'when_full' must be one of: block, drop_newest; got \
                'json'
                    when_full: json
                               ^
                """)
    }

    @Test func graph_whenRequiredOptionIsMissing_reportsItAtTheStageName() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:3: error: outputs.sink: missing required option 'path'
                  sink:
                  ^
                """)
    }

    @Test func graph_whenUnknownUpstream_suggestsClosestName() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [sourse]
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:7:14: error: filters.split: unknown upstream 'sourse' (did you mean 'source'?)
                    inputs: [sourse]
                             ^
                """)
    }

    @Test func graph_whenUnknownUpstreamIsNotClose_listsTheStagesThatCanFeedIt() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source, kafka]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:7:22: error: outputs.sink: unknown upstream 'kafka'; stages that can feed it: source
                    inputs: [source, kafka]
                                     ^
                """)
    }

    @Test func graph_whenPortIsMisspelt_suggestsClosestPortAndListsThePorts() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
            outputs:
              sink:
                type: test_sink
                inputs: [split.rejeted]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:11:14: error: outputs.sink: stage 'split' has no port 'rejeted' (did you mean 'rejected'?); \
                its ports: default, rejected
                    inputs: [split.rejeted]
                             ^
                """)
    }

    @Test func graph_whenAnOutputIsUsedAsUpstream_saysOutputsDoNotFeedStages() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/a.log
              mirror:
                type: test_sink
                inputs: [sink]
                path: /var/log/b.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:11:14: error: outputs.mirror: 'sink' is an output; outputs do not feed other stages
                    inputs: [sink]
                             ^
                """)
    }

    @Test func graph_whenAnOutputsDefaultPortIsUsedAsUpstream_namesThePortsItOffers() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              store:
                type: test_store
                inputs: [source]
              first:
                type: test_sink
                inputs: [store]
                path: /var/log/a.log
              second:
                type: test_sink
                inputs: [store.default]
                path: /var/log/b.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:10:14: error: outputs.first: 'store' is an output; outputs do not feed other stages \
                except through their ports: store.rejected
                    inputs: [store]
                             ^
                router.yaml:14:14: error: outputs.second: 'store' is an output; outputs do not feed other stages \
                except through their ports: store.rejected
                    inputs: [store.default]
                             ^
                """)
    }

    @Test func graph_whenAMappingOptionIsGivenAListOrANestedValue_reportsTheShapeWithAnExample() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              first:
                type: test_store
                inputs: [source]
                columns: [text, token]
              second:
                type: test_store
                inputs: [source]
                columns:
                  text: [message]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:8:14: error: outputs.first: option 'columns' must be a mapping, e.g. {name: name}, got a \
                list
                    columns: [text, token]
                             ^
                router.yaml:13:13: error: outputs.second: option 'columns' must be a string, got a list
                      text: [message]
                            ^
                """)
    }

    @Test func graph_whenAnOutputWithPortsIsMisspeltAsUpstream_suggestsIt() {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              store:
                type: test_store
                inputs: [source]
              dead:
                type: test_sink
                inputs: [stor.rejected]
                path: /var/log/dead.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:10:14: error: outputs.dead: unknown upstream 'stor' (did you mean 'store'?)
                    inputs: [stor.rejected]
                             ^
                """)
    }

    @Test func graph_whenACycleRunsThroughAnOutputsPort_reportsIt() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              retry:
                type: test_split
                inputs: [source, store.rejected]
            outputs:
              store:
                type: test_store
                inputs: [retry]

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:3: error: filters.retry: cycle: retry -> store -> retry
                  retry:
                  ^
                """)
    }

    @Test func graph_whenFiltersFormACycle_reportsTheCycleOnce() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              first:
                type: test_split
                inputs: [source, second]
              second:
                type: test_split
                inputs: [first]
            outputs:
              sink:
                type: test_sink
                inputs: [second]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:3: error: filters.first: cycle: first -> second -> first
                  first:
                  ^
                """)
    }

    @Test func graph_whenAStageReadsFromItself_saysSo() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              loop:
                type: test_split
                inputs: [source, loop.rejected]
            outputs:
              sink:
                type: test_sink
                inputs: [loop]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:7:22: error: filters.loop: a stage cannot read from itself
                    inputs: [source, loop.rejected]
                                     ^
                """)
    }

    @Test func graph_whenANameIsUsedInTwoSections_pointsAtTheFirstUse() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
            outputs:
              split:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:9:3: error: outputs.split: the name 'split' is already used by filters.split (line 5)
                  split:
                  ^
                """)
    }

    @Test func graph_whenNothingConsumesAnInput_reportsTheInput() {
        let yaml = """
            inputs:
              source:
                type: test_source
              spare:
                type: test_source
                port: 5515
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:4:3: error: inputs.spare: input 'spare' is not consumed: no filter or output lists it in \
                its inputs
                  spare:
                  ^
                """)
    }

    @Test func graph_whenTheDeclarationCheckFails_reportsItsMessageAtTheStage() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
                low: 5
                high: 2
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:5:3: error: filters.split: 'low' (5) must not be greater than 'high' (2)
                  split:
                  ^
                """)
    }

    @Test func graph_whenAckLikeFilterIsBehindAOneWayInput_refusesIt() {
        let yaml = """
            inputs:
              source:
                type: test_source
                one_way: true
            filters:
              split:
                type: test_split
                inputs: [source]
              acker:
                type: test_ack
                inputs: [split]
            outputs:
              sink:
                type: test_sink
                inputs: [acker]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:9:3: error: filters.acker: 'test_ack' sends replies to senders, but input 'source' \
                upstream cannot send (one_way: true at line 4)
                  acker:
                  ^
                """)
    }

    @Test func graph_whenAckLikeFilterIsBehindAnInputThatCanReply_acceptsIt() {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              acker:
                type: test_ack
                inputs: [source]
            outputs:
              sink:
                type: test_sink
                inputs: [acker]
                path: /var/log/x.log

            """
        #expect(renderedErrors(yaml) == nil)
    }

    @Test func graph_whenAFileHasSeveralMistakes_reportsEveryOneInLineOrder() {
        let yaml = """
            outputs:
              sink:
                type: test_sink
                inputs: [acker]
                max_sise: 1MiB
            inputs:
              source:
                type: test_source
                port: 99999
              spare:
                type: test_source
            filters:
              split:
                type: test_splitter
                inputs: [source]
              acker:
                type: test_ack
                inputs: [sourse]
            metrics: {}

            """
        #expect(
            renderedErrors(yaml) == """
                router.yaml:2:3: error: outputs.sink: missing required option 'path'
                  sink:
                  ^
                router.yaml:5:5: error: outputs.sink: unknown option 'max_sise' (did you mean 'max_size'?)
                    max_sise: 1MiB
                    ^
                router.yaml:9:11: error: inputs.source: option 'port' must be between 0 and 65535, got 99999
                    port: 99999
                          ^
                router.yaml:10:3: error: inputs.spare: input 'spare' is not consumed: no filter or output lists it in \
                its inputs
                  spare:
                  ^
                router.yaml:14:11: error: filters.split: unknown filter type 'test_splitter' (did you mean \
                'test_split'?)
                    type: test_splitter
                          ^
                router.yaml:18:14: error: filters.acker: unknown upstream 'sourse' (did you mean 'source'?)
                    inputs: [sourse]
                             ^
                router.yaml:19:1: error: unknown section 'metrics'; sections are: inputs, filters, outputs, router
                metrics: {}
                ^
                """)
    }
}

// MARK: - Plans

@Suite("graph check: plans")
struct GraphCheckPlanTests {
    @Test func plan_whenOptionsAreLeftOut_fillsInEveryDefault() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log

            """
        let plan = try plan(yaml)
        let source = try #require(plan.stage("source"))
        #expect(source.options.values == ["port": .integer(5514), "one_way": .bool(false)])
        let split = try #require(plan.stage("split"))
        #expect(
            split.options.values == [
                "inputs": .list([.string("source")]),
                "max_size": .size(10 << 20),
                "flush_interval": .duration(.seconds(5)),
                "format": .string("raw"),
                "low": .integer(0),
                "high": .integer(100),
            ])
        #expect(!split.options.has("label"))
        let sink = try #require(plan.stage("sink"))
        #expect(
            sink.options.values == [
                "inputs": .list([.string("split")]),
                "path": .string("/var/log/x.log"),
                "max_size": .size(1 << 20),
                "queue_max_events": .integer(20_000),
                "when_full": .string("block"),
                "reconnect_backoff_max": .duration(.seconds(5)),
                "drain_timeout": .duration(.seconds(10)),
            ])
        #expect(sink.path == "outputs.sink")
        #expect(sink.kind.role == .output)
    }

    @Test func plan_convertsSizesDurationsAndEnumWords() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
                one_way: yes
            filters:
              split:
                type: test_split
                inputs: [source]
                max_size: 1.5KiB
                flush_interval: 250ms
                format: DEAD_LETTER
                label: hello
            outputs:
              sink:
                type: test_sink
                inputs: [split]
                path: /var/log/x.log
                max_size: 100MB
                when_full: drop_newest

            """
        let plan = try plan(yaml)
        #expect(try plan.stage("source")?.options.bool("one_way") == true)
        let split = try #require(plan.stage("split"))
        #expect(try split.options.size("max_size") == 1536)
        #expect(try split.options.duration("flush_interval") == .milliseconds(250))
        #expect(try split.options.string("format") == "dead_letter")
        #expect(try split.options.optionalString("label") == "hello")
        #expect(split.options.locations["max_size"]?.description == "router.yaml:9:15")
        let sink = try #require(plan.stage("sink"))
        #expect(try sink.options.size("max_size") == 100_000_000)
        #expect(try sink.options.string("when_full") == "drop_newest")
    }

    @Test func plan_withFanOutAndFanIn_recordsEveryUpstream() throws {
        let yaml = """
            inputs:
              east:
                type: test_source
              west:
                type: test_source
                port: 5515
            filters:
              split:
                type: test_split
                inputs: [east, west]
            outputs:
              kept:
                type: test_sink
                inputs: [split]
                path: /var/log/kept.log
              mirror:
                type: test_sink
                inputs: [split]
                path: /var/log/mirror.log
              everything:
                type: test_null
                inputs: [east, west, split.rejected]

            """
        let plan = try plan(yaml)
        let split = Upstream(stage: "split", port: 0, portName: "default")
        #expect(
            plan.stage("split")?.upstreams == [
                Upstream(stage: "east", port: 0, portName: "default"),
                Upstream(stage: "west", port: 0, portName: "default"),
            ])
        #expect(plan.stage("kept")?.upstreams == [split])
        #expect(plan.stage("mirror")?.upstreams == [split])
        #expect(plan.stage("everything")?.upstreams.map(\.description) == ["east", "west", "split.rejected"])
    }

    @Test func plan_whenUpstreamNamesAPort_resolvesItsIndex() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              split:
                type: test_split
                inputs: [source]
            outputs:
              refused:
                type: test_sink
                inputs: [split.rejected]
                path: /var/log/refused.log
              kept:
                type: test_sink
                inputs: [split.default]
                path: /var/log/kept.log

            """
        let plan = try plan(yaml)
        #expect(plan.stage("refused")?.upstreams == [Upstream(stage: "split", port: 1, portName: "rejected")])
        #expect(plan.stage("kept")?.upstreams == [Upstream(stage: "split", port: 0, portName: "default")])
    }

    @Test func plan_ordersInputsThenFiltersByDependencyThenOutputs() throws {
        let yaml = """
            outputs:
              sink:
                type: test_sink
                inputs: [third]
                path: /var/log/x.log
            filters:
              third:
                type: test_split
                inputs: [second]
              second:
                type: test_split
                inputs: [first]
              first:
                type: test_split
                inputs: [source]
            inputs:
              source:
                type: test_source

            """
        let plan = try plan(yaml)
        #expect(plan.stages.map(\.name) == ["source", "first", "second", "third", "sink"])
        #expect(plan.stage("third")?.location?.description == "router.yaml:7:3")
    }

    @Test func plan_whenAStageReadsAnOutputsPort_ordersItAfterThatOutput() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
            filters:
              late:
                type: test_split
                inputs: [store.rejected]
              early:
                type: test_split
                inputs: [source]
            outputs:
              dead:
                type: test_sink
                inputs: [late, early.rejected]
                path: /var/log/dead.log
              store:
                type: test_store
                inputs: [early]

            """
        let plan = try plan(yaml)
        #expect(plan.stages.map(\.name) == ["source", "early", "store", "late", "dead"])
        #expect(plan.stage("late")?.upstreams == [Upstream(stage: "store", port: 1, portName: "rejected")])
    }

    @Test func plan_convertsAMappingOptionWithEveryValueInterpolated() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
            outputs:
              store:
                type: test_store
                inputs: [source]
                columns:
                  text: message
                  sender: "${FIELD}"

            """
        let plan = try plan(yaml, environment: ["FIELD": "client.id"])
        let options = try #require(plan.stage("store")?.options)
        #expect(try options.stringMapping("columns") == ["text": "message", "sender": "client.id"])
        #expect(options.values["columns"]?.description == "{sender: client.id, text: message}")
    }

    @Test func plan_whenPortIsInterpolated_convertsTheExpandedText() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: "${PORT:-5514}"
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: "${LOG_DIR:-./logs}/server.log"

            """
        let defaulted = try plan(yaml)
        #expect(try defaulted.stage("source")?.options.integer("port") == 5514)
        #expect(try defaulted.stage("sink")?.options.string("path") == "./logs/server.log")
        let set = try plan(yaml, environment: ["PORT": "6000", "LOG_DIR": "/srv/logs"])
        #expect(try set.stage("source")?.options.integer("port") == 6000)
        #expect(try set.stage("sink")?.options.string("path") == "/srv/logs/server.log")
    }

    @Test func plan_whenInterpolatedPortIsNotANumber_reportsTheExpandedValue() throws {
        let yaml = """
            inputs:
              source:
                type: test_source
                port: "${PORT:-5514}"
            outputs:
              sink:
                type: test_sink
                inputs: [source]
                path: /var/log/x.log

            """
        #expect(
            renderedErrors(yaml, environment: ["PORT": "syslog"]) == """
                router.yaml:4:11: error: inputs.source: option 'port' must be an integer, got 'syslog'
                    port: "${PORT:-5514}"
                          ^
                """)
    }
}
