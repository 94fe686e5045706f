import RouterCore
import RouterSupport

/// Renders `/stats` and `/health` bodies. The `/stats` schema is documented in docs/http_stats.md; fields are only
/// ever added, and `schema` changes when one changes meaning.
enum StatsJSON {
    /// The `/stats` schema version.
    static let schemaVersion = 1

    static func stats(store: StatsStore, stageName: String, ledgerLimit: Int) -> String {
        let router = store.router
        let nowMonotonic = monotonicNanos()
        var view = store.read { model in
            ModelView(
                received: model.received, invalid: model.invalid, levels: model.levels, errorsSeen: model.errorsSeen,
                capacity: model.recentErrorCapacity, recentErrors: model.recentErrors,
                rate: model.rate(
                    atMonotonicNanos: nowMonotonic, startedAtMonotonicNanos: router.startedAtMonotonicNanos),
                ledger: LedgerView(model.ledger, unsequenced: model.unsequenced))
        }
        view.ledger.order(limit: ledgerLimit)
        let health = store.health()
        var out = "{"
        field(&out, "schema", String(schemaVersion), first: true)
        field(&out, "stage", JSONText.quoted(stageName))
        field(&out, "started_at", JSONText.quoted(Timestamp.iso8601(nanos: router.startedAtNanos, digits: 3)))
        field(&out, "now", JSONText.quoted(Timestamp.iso8601(nanos: wallClockNanos(), digits: 3)))
        field(&out, "uptime_seconds", decimal(router.uptimeSeconds, places: 3))
        field(&out, "received", String(view.received))
        field(&out, "invalid", String(view.invalid))
        field(&out, "rate_per_second", decimal(view.rate, places: 2))
        field(&out, "rate_window_seconds", String(StatsModel.rateWindowSeconds))
        out += ",\"levels\":{"
        for (index, level) in levelOrder.enumerated() {
            field(&out, level.description, String(view.levels[Int(level.rawValue)]), first: index == 0)
        }
        out += "},\"recent_errors\":{"
        field(&out, "capacity", String(view.capacity), first: true)
        field(&out, "seen", String(view.errorsSeen))
        out += ",\"entries\":["
        for (index, error) in view.recentErrors.enumerated() {
            if index > 0 { out += "," }
            out += "{"
            field(
                &out, "received_at", JSONText.quoted(Timestamp.iso8601(nanos: error.receivedAtNanos, digits: 3)),
                first: true)
            field(&out, "timestamp", JSONText.quoted(error.timestamp))
            field(&out, "level", JSONText.quoted(error.level))
            field(&out, "sequence", error.sequence.map { String($0) } ?? "null")
            field(&out, "host", JSONText.quoted(error.host))
            field(&out, "app", JSONText.quoted(error.app))
            field(&out, "message", JSONText.quoted(error.message))
            out += "}"
        }
        out += "]},\"health\":"
        out += healthBody(health.status, health.reasons, notes: store.healthNotes())
        out += ",\"stages\":["
        for (index, stage) in router.stages.enumerated() {
            if index > 0 { out += "," }
            appendStage(stage, to: &out)
        }
        out += "],\"config\":"
        out += configBody(router)
        out += ",\"ledger\":"
        appendLedger(view.ledger, to: &out)
        out += "}"
        return out
    }

    /// The config that runs (`generation`, `loaded_at`, `path`, `sha256`; null fields when the router was not built
    /// from a file) and the latest reload attempt (`last_reload`, null before the first).
    static func configBody(_ router: RouterObserver) -> String {
        var out = "{"
        let loaded = router.loadedConfig
        field(&out, "generation", loaded.map { String($0.number) } ?? "null", first: true)
        field(
            &out, "loaded_at",
            loaded.map { JSONText.quoted(Timestamp.iso8601(nanos: $0.loadedAtNanos, digits: 3)) } ?? "null")
        field(&out, "path", loaded.map { JSONText.quoted($0.path) } ?? "null")
        field(&out, "sha256", loaded.map { JSONText.quoted($0.sha256) } ?? "null")
        field(&out, "last_reload", router.lastReload.map(reloadBody) ?? "null")
        return out + "}"
    }

    /// One reload attempt: `at`, `trigger`, `applied`, `generation`, `errors` (rendered with `file:line:column`) and
    /// the stage paths by `added`, `removed`, `changed`, `kept`.
    static func reloadBody(_ attempt: ReloadAttempt) -> String {
        var out = "{"
        field(&out, "at", JSONText.quoted(Timestamp.iso8601(nanos: attempt.atNanos, digits: 3)), first: true)
        field(&out, "trigger", JSONText.quoted(attempt.trigger))
        field(&out, "applied", attempt.applied ? "true" : "false")
        field(&out, "generation", String(attempt.generation))
        field(&out, "errors", "[" + attempt.errors.map { JSONText.quoted($0) }.joined(separator: ",") + "]")
        out += ",\"stages\":{"
        for (index, key) in ["added", "removed", "changed", "kept"].enumerated() {
            let names = attempt.stages[key] ?? []
            field(&out, key, "[" + names.map { JSONText.quoted($0) }.joined(separator: ",") + "]", first: index == 0)
        }
        return out + "}}"
    }

    /// `{"status":"ok"}`, `{"status":"draining"}`, or `{"status":"degraded","reasons":[...]}`, with
    /// `"notes":[...]` when a stage has one (an `amqp` stage's broker and failovers).
    static func healthBody(_ status: StatsStore.Status, _ reasons: [String], notes: [String] = []) -> String {
        var out = "{\"status\":\"\(status.rawValue)\""
        if status == .degraded {
            out += ",\"reasons\":[" + reasons.map { JSONText.quoted($0) }.joined(separator: ",") + "]"
        }
        if !notes.isEmpty {
            out += ",\"notes\":[" + notes.map { JSONText.quoted($0) }.joined(separator: ",") + "]"
        }
        return out + "}"
    }

    /// Levels in the order shown: most common first, `UNKNOWN` last.
    static let levelOrder: [Level] = [.debug, .info, .warning, .error, .critical, .unknown]

    private struct ModelView {
        var received: Int
        var invalid: Int
        var levels: [Int]
        var errorsSeen: Int
        var capacity: Int
        var recentErrors: [RecentError]
        var rate: Double
        var ledger: LedgerView
    }

    private struct LedgerView {
        var totals: LossLedger.Counts
        var senderCount: Int
        var maxSenders: Int
        var evictions: Int
        var unsequenced: Int
        var shown: [LossLedger.Sender]

        init(_ ledger: LossLedger, unsequenced: Int) {
            totals = ledger.totals
            senderCount = ledger.senderCount
            maxSenders = ledger.maxSenders
            evictions = ledger.evictions
            self.unsequenced = unsequenced
            shown = ledger.senders
        }

        /// Worst senders first (most missing, then most otherwise out of line), outside the lock.
        mutating func order(limit: Int) {
            let ordered = shown.sorted { lhs, rhs in
                let left = (lhs.counts.missing, lhs.counts.duplicates + lhs.counts.outOfOrder + lhs.counts.tooOld)
                let right = (rhs.counts.missing, rhs.counts.duplicates + rhs.counts.outOfOrder + rhs.counts.tooOld)
                if left != right { return left > right }
                return (lhs.key.host, lhs.key.app) < (rhs.key.host, rhs.key.app)
            }
            shown = limit > 0 ? Array(ordered.prefix(limit)) : ordered
        }
    }

    /// A disk buffer: what it holds, how old the oldest entry is, and what damage and drops it counted.
    private static func appendBuffer(_ buffer: DiskBufferReport, to out: inout String) {
        let now = wallClockNanos()
        out += ",\"buffer\":{"
        field(&out, "type", "\"disk\"", first: true)
        field(&out, "path", JSONText.quoted(buffer.path))
        field(&out, "bytes", String(buffer.bytes))
        field(&out, "max_size", String(buffer.maxSize))
        field(&out, "events", String(buffer.events))
        field(&out, "segments", String(buffer.segments))
        field(&out, "oldest_age_seconds", buffer.oldestNanos.map { String(Double(max(0, now - $0)) / 1e9) } ?? "null")
        field(&out, "full", buffer.isFull ? "true" : "false")
        field(&out, "read_failure", buffer.readFailure.map(JSONText.quoted) ?? "null")
        field(&out, "records_cut", String(buffer.damage.cutRecords))
        field(&out, "records_skipped", String(buffer.damage.skippedRecords))
        field(&out, "events_lost_damaged", String(buffer.damage.lostEvents))
        field(&out, "events_replayed", String(buffer.replayedEvents))
        field(&out, "events_dropped_full", String(buffer.droppedFull))
        out += "}"
    }

    private static func appendStage(_ stage: StageStatus, to out: inout String) {
        out += "{"
        field(&out, "name", JSONText.quoted(stage.name), first: true)
        field(&out, "type", JSONText.quoted(stage.type))
        field(&out, "role", JSONText.quoted(stage.role.rawValue))
        field(&out, "path", JSONText.quoted(stage.path))
        switch stage.health.current {
        case .ok: out += ",\"health\":{\"status\":\"ok\""
        case .degraded(let reason): out += ",\"health\":{\"status\":\"degraded\",\"reason\":\(JSONText.quoted(reason))"
        }
        if let note = stage.health.note { out += ",\"note\":\(JSONText.quoted(note))" }
        out += "}"
        if let queue = stage.queue {
            out += ",\"queue\":{"
            field(&out, "depth", String(queue.depth), first: true)
            field(&out, "capacity", String(queue.capacity))
            field(&out, "when_full", JSONText.quoted(queue.whenFull.rawValue))
            out += "}"
        } else {
            out += ",\"queue\":null"
        }
        if let buffer = stage.buffer?.report {
            appendBuffer(buffer, to: &out)
        } else if stage.role == .output {
            out += ",\"buffer\":{\"type\":\"memory\"}"
        }
        out += ",\"counters\":{"
        // Unlabelled series are numbers; labelled ones are {"label": {"value": count}}.
        var order: [String] = []
        var plain: [String: Int] = [:]
        var labelled: [String: (label: String, values: [(String, Int)])] = [:]
        for (key, value) in stage.counters.snapshot() {
            if plain[key.name] == nil && labelled[key.name] == nil { order.append(key.name) }
            if let label = key.label, let labelValue = key.value {
                labelled[key.name, default: (label, [])].values.append((labelValue, value))
            } else {
                plain[key.name, default: 0] += value
            }
        }
        for (index, name) in order.enumerated() {
            if let series = labelled[name] {
                var inner = "{" + JSONText.quoted(series.label) + ":{"
                var values = series.values
                if let unlabelled = plain[name] { values.append(("", unlabelled)) }
                inner += values.map { JSONText.quoted($0.0) + ":" + String($0.1) }.joined(separator: ",")
                inner += "}}"
                field(&out, name, inner, first: index == 0)
            } else {
                field(&out, name, String(plain[name] ?? 0), first: index == 0)
            }
        }
        out += "}"
        let rankings = stage.counters.rankings()
        if !rankings.isEmpty {
            // The busiest label values of a counter, most first (throttle's keys).
            out += ",\"top\":{"
            for (index, ranking) in rankings.enumerated() {
                let entries = ranking.entries.map {
                    "{\"key\":" + JSONText.quoted($0.value) + ",\"count\":" + String($0.count) + "}"
                }
                field(&out, ranking.name, "[" + entries.joined(separator: ",") + "]", first: index == 0)
            }
            out += "}"
        }
        out += "}"
    }

    private static func appendLedger(_ ledger: LedgerView, to out: inout String) {
        out += "{"
        field(&out, "window", String(LossLedger.windowSize), first: true)
        field(&out, "max_senders", String(ledger.maxSenders))
        field(&out, "senders", String(ledger.senderCount))
        field(&out, "evictions", String(ledger.evictions))
        field(&out, "unsequenced", String(ledger.unsequenced))
        out += ",\"totals\":"
        appendCounts(ledger.totals, to: &out)
        field(&out, "shown", String(ledger.shown.count))
        out += ",\"entries\":["
        for (index, sender) in ledger.shown.enumerated() {
            if index > 0 { out += "," }
            out += "{"
            field(&out, "host", JSONText.quoted(sender.key.host), first: true)
            field(&out, "app", JSONText.quoted(sender.key.app))
            out += ","
            var counts = ""
            appendCounts(sender.counts, to: &counts)
            out += counts.dropFirst().dropLast()
            field(&out, "newest_sequence", String(sender.newestSequence))
            field(&out, "last_seen", JSONText.quoted(Timestamp.iso8601(nanos: sender.lastSeenNanos, digits: 3)))
            out += "}"
        }
        out += "]}"
    }

    private static func appendCounts(_ counts: LossLedger.Counts, to out: inout String) {
        out += "{"
        field(&out, "received", String(counts.received), first: true)
        field(&out, "missing", String(counts.missing))
        field(&out, "duplicates", String(counts.duplicates))
        field(&out, "out_of_order", String(counts.outOfOrder))
        field(&out, "too_old", String(counts.tooOld))
        field(&out, "restarts", String(counts.restarts))
        out += "}"
    }

    private static func field(_ out: inout String, _ name: String, _ value: String, first: Bool = false) {
        if !first { out += "," }
        JSONText.appendString(name, to: &out)
        out += ":"
        out += value
    }

    /// A finite number with at most `places` decimals, as JSON.
    static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int64(rounded)) }
        return String(rounded)
    }
}
