public import RouterCore
internal import Synchronization

/// `sample`: keeps 1 entry in `rate` (the first, then every `rate`-th), overall or per `key`, and never samples out
/// entries whose level is in `keep_levels`. The rest leave by port `sampled_out`, and are counted.
public final class Sample: FilterStage {
    /// The `sample` declaration.
    public static let declaration = StageDeclaration(
        type: "sample",
        summary: "Keeps 1 in `rate` entries (optionally per key field), never sampling out keep_levels.",
        options: [rate, key, keepLevels, maxKeys],
        ports: [
            PortDeclaration(
                "sampled_out", "Entries sampled out (counted as sampled_out; discarded when nothing reads it).")
        ],
        counters: [CounterDeclaration("sampled_out", "Entries sampled out.")],
        example: StageExample("rate: 10\nkey: app"),
        validate: { options in
            guard let name = (try? options.value(Sample.key)) ?? nil, FieldPath(name) == nil else { return [] }
            return [
                OptionProblemReport(
                    "option 'key': '\(name)' is not a field path (names joined by dots, e.g. trace.id)",
                    at: options.locations["key"])
            ]
        }
    )

    static let rate = StageOption<Int>(
        OptionDeclaration(
            "rate", .integer(1...1_000_000_000), .required,
            "Keep 1 entry in this many: the first, then every rate-th (per key when `key` is set). 1 keeps all."))
    static let key = StageOption<String?>.optionalString(
        "key",
        "Field path to sample per value of (`app`: 1 in rate of each app's entries); entries without it form one "
            + "group.")
    static let keepLevels = StageOption<[String]>.strings(
        "keep_levels", of: .oneOf(Level.acceptedNames), default: ["ERROR", "CRITICAL"],
        "Levels never sampled out (and not counted toward the rate); [] samples every level.")
    static let maxKeys = StageOption<Int>.integer(
        "max_keys", 1...10_000_000, default: 100_000,
        "Most distinct keys tracked; past it, entries of new keys share one group (memory stays bounded).")

    /// Port index of `sampled_out`.
    public static let sampledOutPort = 1

    private let every: Int
    private let keyReader: KeyReader?
    private let keep: [Bool]
    private let overall = Atomic<Int>(0)
    private let perKey: Mutex<BoundedKeyTable<Int>>
    private let sampledOut: Counter

    /// Makes the filter.
    public init(context: StageContext) throws {
        every = try context.options.value(Sample.rate)
        if let name = try context.options.value(Sample.key) {
            guard let path = FieldPath(name) else {
                throw StageError(.invalidConfiguration, "'\(name)' is not a field path")
            }
            keyReader = KeyReader(path)
        } else {
            keyReader = nil
        }
        var keep = [Bool](repeating: false, count: Int(Level.critical.rawValue) + 1)
        for name in try context.options.value(Sample.keepLevels) {
            guard let level = Level(name: name) else {
                throw StageError(.invalidConfiguration, "'\(name)' is not a level")
            }
            keep[Int(level.rawValue)] = true
        }
        self.keep = keep
        perKey = Mutex(BoundedKeyTable(capacity: try context.options.value(Sample.maxKeys)))
        sampledOut = context.counters.counter("sampled_out")
    }

    /// Splits the batch into kept and sampled out.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        let keep = self.keep
        var candidates: [Int] = []
        var port = [Int](repeating: 0, count: batch.count)
        for (index, event) in batch.events.enumerated() {
            let level = event.flags.contains(.fieldsExtracted) ? event.level : batch.scanLevel(of: event)
            if !keep[Int(level.rawValue)] { candidates.append(index) }
        }
        guard !candidates.isEmpty, every > 1 else {
            output.emit(batch)
            return
        }
        if let keyReader {
            var keys: [[UInt8]] = []
            keys.reserveCapacity(candidates.count)
            var key: [UInt8] = []
            let scratch = keyReader.scratch()
            for index in candidates {
                batch.withBytes(of: batch.events[index]) { keyReader.read($0, into: &key, scratch: scratch) }
                keys.append(key)
            }
            let every = self.every
            perKey.withLock { table in
                for (position, index) in candidates.enumerated() {
                    table.withState(keys[position], make: { 0 }) { seen, _ in
                        if seen % every != 0 { port[index] = Sample.sampledOutPort }
                        seen = (seen + 1) % every
                    }
                }
            }
        } else {
            let base = overall.wrappingAdd(candidates.count, ordering: .relaxed).oldValue
            for (position, index) in candidates.enumerated() where (base &+ position) % every != 0 {
                port[index] = Sample.sampledOutPort
            }
        }
        var kept: [Event] = []
        var dropped: [Event] = []
        kept.reserveCapacity(batch.count)
        for (index, event) in batch.events.enumerated() {
            if port[index] == 0 { kept.append(event) } else { dropped.append(event) }
        }
        sampledOut.add(dropped.count)
        output.emit(batch.with(events: kept))
        output.emit(batch.with(events: dropped), port: Sample.sampledOutPort)
    }
}
