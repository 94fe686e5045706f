import Prometheus
import RouterCore
import RouterSupport
import Synchronization

/// Renders `/metrics`: the Prometheus text exposition of every stage's counters, queues and health, the loss
/// ledger and the process, through swift-prometheus's ``PrometheusCollectorRegistry``.
///
/// Stage counters are lock-free slots owned by the stages; at each scrape the registry's counters are moved
/// forward by what each slot grew since the last scrape, so the registry holds exactly the stage values. Families
/// are printed sorted by name, and the series in a family sorted too, so the page reads the same at each scrape.
final class MetricsRenderer: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let state = Mutex(ScrapeState())

    private struct ScrapeState {
        var counters: [String: (counter: Prometheus.Counter, last: Int)] = [:]
        var gauges: [String: Gauge] = [:]
        var cpu: (counter: Prometheus.Counter, last: Double)?
    }

    /// Families this renderer defines itself; a stage counter that would collide is renamed `routerd_stage_*`.
    private static let ownFamilies: Set<String> = [
        "routerd_ledger_received_total", "routerd_ledger_duplicates_total", "routerd_ledger_out_of_order_total",
        "routerd_ledger_restarts_total", "routerd_ledger_evictions_total", "routerd_entries_total",
    ]

    private static let standardHelp: [String: String] = Dictionary(
        uniqueKeysWithValues: CounterDeclaration.standard(for: .input).map { ($0.name, $0.description) })

    func render(store: StatsStore, stageName: String) -> String {
        let stages = store.router.stages
        let ledger = store.read { model in (model.ledger.totals, model.ledger.evictions, model.ledger.senderCount) }
        let levels = store.read { $0.levels }
        let process = ProcessStats.read()
        let health = store.health()
        let text = state.withLock { state -> String in
            for stage in stages {
                let base = [("stage", stage.name), ("type", stage.type)]
                for (key, value) in stage.counters.snapshot() {
                    var labels = base
                    if let label = key.label, let labelValue = key.value {
                        labels.append((label == "stage" || label == "type" ? "counter_" + label : label, labelValue))
                    }
                    setCounter(
                        &state, family: Self.family(for: key.name), help: Self.help(for: key.name), labels, value)
                }
                if let queue = stage.queue {
                    setGauge(
                        &state, "routerd_queue_depth_events", "Events waiting in an output's queue.", base,
                        Double(queue.depth))
                    setGauge(
                        &state, "routerd_queue_capacity_events",
                        "Most events an output's queue holds (queue_max_events).", base, Double(queue.capacity))
                }
                if let buffer = stage.buffer?.report {
                    renderBuffer(buffer, labels: base, into: &state)
                }
                let healthy: Double = stage.health.current == .ok ? 1 : 0
                setGauge(
                    &state, "routerd_stage_healthy", "1 while the stage reports itself working, 0 while degraded.",
                    base + [("role", stage.role.rawValue)], healthy)
            }
            let own = [("stage", stageName)]
            // The dashboard page's total and level chart, for Prometheus and Grafana.
            for level in StatsJSON.levelOrder where Int(level.rawValue) < levels.count {
                setCounter(
                    &state, family: "routerd_entries_total",
                    help: "Entries this http_stats output counted (the dashboard's total), by level.",
                    own + [("level", level.description)], levels[Int(level.rawValue)])
            }
            setCounter(
                &state, family: "routerd_ledger_received_total",
                help: "Entries with a sequence number, counted by the loss ledger.", own, ledger.0.received)
            setCounter(
                &state, family: "routerd_ledger_duplicates_total",
                help: "Sequences a sender sent again within the ledger's window.", own, ledger.0.duplicates)
            setCounter(
                &state, family: "routerd_ledger_out_of_order_total",
                help: "Sequences that arrived after a later one from the same sender.", own, ledger.0.outOfOrder)
            setCounter(
                &state, family: "routerd_ledger_restarts_total",
                help: "Times a sender restarted its sequence numbering.", own, ledger.0.restarts)
            setCounter(
                &state, family: "routerd_ledger_evictions_total",
                help: "Senders the loss ledger stopped following to make room (least recently seen).", own, ledger.1)
            setGauge(
                &state, "routerd_ledger_missing",
                "Sequences skipped by senders and not arrived since (late arrivals lower it).", own,
                Double(ledger.0.missing))
            setGauge(
                &state, "routerd_ledger_too_old",
                "Sequences too far behind a sender's newest to tell a duplicate from a late arrival.", own,
                Double(ledger.0.tooOld))
            setGauge(
                &state, "routerd_ledger_senders", "Senders (host, app) the loss ledger follows now.", own,
                Double(ledger.2))
            setGauge(
                &state, "routerd_draining", "1 during a graceful shutdown.", [],
                health.status == .draining ? 1 : 0)
            setGauge(
                &state, "routerd_degraded", "1 while /health reports degraded (see /health for the reasons).", [],
                health.status == .degraded ? 1 : 0)
            setGauge(
                &state, "routerd_uptime_seconds", "Seconds since the router was built.", [],
                store.router.uptimeSeconds)
            setGauge(
                &state, "process_resident_memory_bytes", "Resident memory size in bytes.", [],
                Double(process.residentBytes))
            setGauge(
                &state, "process_virtual_memory_bytes", "Virtual memory size in bytes.", [],
                Double(process.virtualBytes))
            setGauge(
                &state, "process_open_fds", "Number of open file descriptors.", [],
                Double(process.openFileDescriptors))
            setGauge(
                &state, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", [],
                process.startTimeSeconds)
            setCPU(&state, process.cpuSeconds)
            return registry.emitToString()
        }
        return Self.sorted(text)
    }

    /// `routerd_<name>_total`, or `routerd_stage_<name>_total` when that name is one of this renderer's own.
    static func family(for counter: String) -> String {
        let stem = counter.hasSuffix("_total") ? String(counter.dropLast(6)) : counter
        let name = "routerd_" + stem + "_total"
        return ownFamilies.contains(name) ? "routerd_stage_" + stem + "_total" : name
    }

    private static func help(for counter: String) -> String {
        if let standard = standardHelp[counter] { return standard }
        return "Stage counter \(counter), by stage and type (`routerd stages` says what each stage counts)."
    }

    /// A disk buffer's size, fill, oldest entry and what it counted.
    private func renderBuffer(_ buffer: DiskBufferReport, labels: [(String, String)], into state: inout ScrapeState) {
        setGauge(
            &state, "routerd_buffer_bytes", "Bytes of an output's disk buffer segments.", labels, Double(buffer.bytes))
        setGauge(
            &state, "routerd_buffer_max_bytes", "An output's disk buffer max_size.", labels, Double(buffer.maxSize))
        setGauge(
            &state, "routerd_buffer_events", "Entries in an output's disk buffer, not yet settled by the output.",
            labels, Double(buffer.events))
        let age = buffer.oldestNanos.map { Double(max(0, wallClockNanos() - $0)) / 1e9 } ?? 0
        setGauge(
            &state, "routerd_buffer_oldest_age_seconds",
            "Age of the oldest entry in an output's disk buffer (0 when empty).", labels, age)
        setGauge(
            &state, "routerd_buffer_full", "1 while appends to an output's disk buffer wait for room.", labels,
            buffer.isFull ? 1 : 0)
        setCounter(
            &state, family: "routerd_buffer_records_cut_total",
            help: "Torn records cut off a disk buffer's newest segment when it was opened.", labels,
            buffer.damage.cutRecords)
        setCounter(
            &state, family: "routerd_buffer_records_skipped_total",
            help: "Damaged stretches of a disk buffer skipped (a record whose checksum failed).", labels,
            buffer.damage.skippedRecords)
        setCounter(
            &state, family: "routerd_buffer_events_lost_total",
            help: "Entries lost in damaged stretches of a disk buffer.", labels, buffer.damage.lostEvents)
        setCounter(
            &state, family: "routerd_buffer_events_replayed_total",
            help: "Entries a disk buffer delivered again after a restart: handed to the output before, not settled.",
            labels, buffer.replayedEvents)
    }

    private func setCounter(
        _ state: inout ScrapeState, family: String, help: String, _ labels: [(String, String)], _ value: Int
    ) {
        let key = Self.seriesKey(family, labels)
        let entry =
            state.counters[key] ?? (registry.makeCounter(descriptor: Self.descriptor(family, help), labels: labels), 0)
        if value < entry.last {
            entry.counter.reset()
            entry.counter.increment(by: Int64(value))
        } else if value > entry.last {
            entry.counter.increment(by: Int64(value - entry.last))
        }
        state.counters[key] = (entry.counter, value)
    }

    private func setGauge(
        _ state: inout ScrapeState, _ family: String, _ help: String, _ labels: [(String, String)], _ value: Double
    ) {
        let key = Self.seriesKey(family, labels)
        let gauge = state.gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(family, help), labels: labels)
        state.gauges[key] = gauge
        gauge.set(value)
    }

    private func setCPU(_ state: inout ScrapeState, _ seconds: Double) {
        let entry =
            state.cpu
            ?? (
                registry.makeCounter(
                    descriptor: Self.descriptor(
                        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")), 0
            )
        if seconds > entry.last { entry.counter.increment(by: seconds - entry.last) }
        state.cpu = (entry.counter, max(seconds, entry.last))
    }

    private static func descriptor(_ family: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: family, unitName: "", helpText: help)
    }

    private static func seriesKey(_ family: String, _ labels: [(String, String)]) -> String {
        var key = family
        for (name, value) in labels { key += "\u{0}" + name + "\u{1}" + value }
        return key
    }

    /// The registry's text with families in name order and each family's series sorted.
    static func sorted(_ text: String) -> String {
        var families: [String: (header: [Substring], samples: [Substring])] = [:]
        var current = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                current = String(line.dropFirst(7).prefix { $0 != " " })
                families[current, default: ([], [])].header.append(line)
            } else {
                families[current, default: ([], [])].samples.append(line)
            }
        }
        var out = ""
        for name in families.keys.sorted() {
            guard let family = families[name] else { continue }
            for line in family.header { out += line + "\n" }
            for line in family.samples.sorted() { out += line + "\n" }
        }
        return out
    }
}
