import ArgumentParser
import Foundation
import Router

#if canImport(Glibc)
    import Glibc
#endif

/// `routerd top`: a live view of every stage of a running router, from its `http_stats` `/stats`.
struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show every stage of a running router, live: events per second, drops, queues, health, buffers.",
        discussion: """
            Reads /stats from an http_stats output every second. In a terminal it redraws one screen (q or Ctrl-C \
            quits); when standard output is not a terminal it prints one plain line per stage per refresh.
            """)

    @Option(help: ArgumentHelp("The http_stats output's address (or its /stats URL).", valueName: "url"))
    var url = "http://127.0.0.1:8080"

    @Option(help: ArgumentHelp("Stop after this many refreshes (0: until stopped).", valueName: "n"))
    var count = 0

    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "seconds"))
    var interval = 1.0

    func validate() throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be 0.1...3600 seconds") }
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let statsURL =
            url.hasSuffix("/stats") ? url : url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/stats"
        let terminal = isatty(STDOUT_FILENO) == 1
        let keyboard = terminal ? RawKeyboard() : nil
        defer { keyboard?.restore() }
        if terminal { write("\u{1B}[?1049h\u{1B}[?25l") }
        defer { if terminal { write("\u{1B}[?25h\u{1B}[?1049l") } }
        var rates = RateTracker()
        var refreshes = 0
        while true {
            let frame: TopFrame
            do {
                let body = try StatsReader.get(statsURL, timeoutNanos: 2_000_000_000)
                guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                    throw ClientError("\(statsURL) did not return a JSON object")
                }
                frame = TopFrame(stats: object, rates: &rates, nanos: monotonicNow())
            } catch {
                frame = TopFrame(failure: "\(error)")
            }
            if terminal {
                let size = terminalSize()
                write("\u{1B}[H\u{1B}[2J" + frame.screen(url: statsURL, width: size.columns, height: size.rows))
            } else {
                let lines = frame.plainLines(timestamp: Date())
                if let failure = frame.failure {
                    printError("routerd top: \(failure)")
                } else {
                    write(lines.joined(separator: "\n") + "\n")
                }
            }
            refreshes += 1
            if count > 0 && refreshes >= count { return }
            if let keyboard {
                if keyboard.waitForQuit(seconds: interval) { return }
            } else {
                usleep(UInt32(interval * 1_000_000))
            }
        }
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    private func terminalSize() -> (columns: Int, rows: Int) {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return (100, 40) }
        return (Int(size.ws_col), Int(size.ws_row))
    }

    private func monotonicNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// The keyboard in raw mode while `top` runs, so that `q` quits without Enter; restored on exit.
private final class RawKeyboard {
    private var saved = termios()
    private let active: Bool

    init() {
        guard isatty(STDIN_FILENO) == 1, tcgetattr(STDIN_FILENO, &saved) == 0 else {
            active = false
            return
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        active = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0
    }

    /// Waits up to `seconds` for a key; true when it was `q`, `Q` or Ctrl-C.
    func waitForQuit(seconds: Double) -> Bool {
        guard active else {
            usleep(UInt32(seconds * 1_000_000))
            return false
        }
        var deadline = seconds
        while deadline > 0 {
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let started = Date()
            let ready = poll(&descriptor, 1, Int32(deadline * 1000))
            if ready > 0 {
                var byte: UInt8 = 0
                if read(STDIN_FILENO, &byte, 1) == 1,
                    byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") || byte == 3
                {
                    return true
                }
                if read(STDIN_FILENO, &byte, 0) < 0 { return false }
            } else if ready < 0 && errno != EINTR {
                return false
            }
            deadline -= Date().timeIntervalSince(started)
        }
        return false
    }

    func restore() {
        if active { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    }
}

/// Per-second rates from successive counter readings, by stage name.
struct RateTracker {
    private var previous: [String: (nanos: Int64, eventsIn: Int, eventsOut: Int)] = [:]

    /// The rates since the last reading of the same stage (nil at the first), and records this reading.
    mutating func rates(stage: String, eventsIn: Int, eventsOut: Int, nanos: Int64) -> (Double, Double)? {
        defer { previous[stage] = (nanos, eventsIn, eventsOut) }
        guard let last = previous[stage], nanos > last.nanos, eventsIn >= last.eventsIn else { return nil }
        let seconds = Double(nanos - last.nanos) / 1e9
        return (Double(eventsIn - last.eventsIn) / seconds, Double(max(0, eventsOut - last.eventsOut)) / seconds)
    }
}

/// One refresh of `top`: the router's health and a row per stage.
struct TopFrame {
    struct Row {
        var name: String
        var type: String
        var role: String
        var health: String
        var inRate: Double?
        var outRate: Double?
        var eventsIn: Int
        var eventsOut: Int
        var drops: [(reason: String, count: Int)]
        var queueDepth: Int?
        var queueCapacity: Int?
        var bufferBytes: Int?
        var bufferMax: Int?
    }

    var failure: String?
    var health = ""
    var healthReasons: [String] = []
    var uptime = 0.0
    var received = 0
    var rate = 0.0
    var generation: String?
    var rows: [Row] = []

    init(failure: String) {
        self.failure = failure
    }

    init(stats: [String: Any], rates: inout RateTracker, nanos: Int64) {
        let healthObject = stats["health"] as? [String: Any]
        health = healthObject?["status"] as? String ?? "?"
        healthReasons = healthObject?["reasons"] as? [String] ?? []
        uptime = (stats["uptime_seconds"] as? NSNumber)?.doubleValue ?? 0
        received = (stats["received"] as? NSNumber)?.intValue ?? 0
        rate = (stats["rate_per_second"] as? NSNumber)?.doubleValue ?? 0
        generation = ((stats["config"] as? [String: Any])?["generation"] as? NSNumber).map { "\($0.intValue)" }
        for stage in stats["stages"] as? [[String: Any]] ?? [] {
            let name = stage["name"] as? String ?? "?"
            let counters = stage["counters"] as? [String: Any] ?? [:]
            let eventsIn = Self.total(counters["events_in"])
            let eventsOut = Self.total(counters["events_out"])
            let stageHealth = stage["health"] as? [String: Any]
            var healthText = stageHealth?["status"] as? String ?? "?"
            if let reason = stageHealth?["reason"] as? String { healthText += ": " + reason }
            let queue = stage["queue"] as? [String: Any]
            let buffer = stage["buffer"] as? [String: Any]
            let measured = rates.rates(stage: name, eventsIn: eventsIn, eventsOut: eventsOut, nanos: nanos)
            rows.append(
                Row(
                    name: name, type: stage["type"] as? String ?? "?", role: stage["role"] as? String ?? "?",
                    health: healthText, inRate: measured?.0, outRate: measured?.1, eventsIn: eventsIn,
                    eventsOut: eventsOut, drops: Self.byReason(counters["events_dropped"]),
                    queueDepth: (queue?["depth"] as? NSNumber)?.intValue,
                    queueCapacity: (queue?["capacity"] as? NSNumber)?.intValue,
                    bufferBytes: (buffer?["bytes"] as? NSNumber)?.intValue,
                    bufferMax: (buffer?["max_size"] as? NSNumber)?.intValue))
        }
    }

    /// A counter's total: a number, or the sum of a labelled series (`{"port":{"default":3,"invalid":1}}`).
    static func total(_ value: Any?) -> Int {
        if let number = value as? NSNumber { return number.intValue }
        if let series = value as? [String: Any] { return series.values.reduce(0) { $0 + total($1) } }
        return 0
    }

    /// `events_dropped{reason}`'s non-zero values, largest first.
    static func byReason(_ value: Any?) -> [(reason: String, count: Int)] {
        if let number = value as? NSNumber { return number.intValue > 0 ? [("dropped", number.intValue)] : [] }
        guard let series = value as? [String: Any], let reasons = series.values.first as? [String: Any] else {
            return []
        }
        return reasons.compactMap { key, value in
            let count = total(value)
            return count > 0 ? (key.isEmpty ? "other" : key, count) : nil
        }.sorted { ($0.count, $1.reason) > ($1.count, $0.reason) }
    }

    static func rateText(_ rate: Double?) -> String {
        guard let rate else { return "-" }
        if rate >= 10_000 { return String(format: "%.0f", rate) }
        return String(format: "%.1f", rate)
    }

    static func bytesText(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    func queueText(_ row: Row) -> String {
        guard let depth = row.queueDepth, let capacity = row.queueCapacity, capacity > 0 else { return "-" }
        return "\(depth)/\(capacity) \(Int((Double(depth) / Double(capacity) * 100).rounded()))%"
    }

    func bufferText(_ row: Row) -> String {
        guard let bytes = row.bufferBytes else { return "-" }
        return Self.bytesText(bytes)
    }

    func dropsText(_ row: Row) -> String {
        row.drops.isEmpty ? "0" : row.drops.map { "\($0.reason)=\($0.count)" }.joined(separator: " ")
    }

    /// The terminal screen, cut to `width` columns and `height` rows.
    func screen(url: String, width: Int, height: Int) -> String {
        var lines: [String] = []
        if let failure {
            lines.append("routerd top  \(url)")
            lines.append("")
            lines.append("cannot read /stats: \(failure)")
            lines.append("retrying every second; q quits")
        } else {
            var head = "routerd top  \(url)  health: \(health)"
            head += String(format: "  uptime: %.0fs  received: %d  rate: %.1f/s", uptime, received, rate)
            if let generation { head += "  config: #\(generation)" }
            lines.append(head)
            for reason in healthReasons { lines.append("  degraded: \(reason)") }
            lines.append("")
            let header = ["STAGE", "TYPE", "IN/s", "OUT/s", "IN", "OUT", "QUEUE", "BUFFER", "HEALTH", "DROPS"]
            var table = [header]
            for row in rows {
                table.append([
                    row.name, row.type, Self.rateText(row.inRate), Self.rateText(row.outRate), "\(row.eventsIn)",
                    "\(row.eventsOut)", queueText(row), bufferText(row), row.health, dropsText(row),
                ])
            }
            let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
            for cells in table {
                var line = ""
                for (column, cell) in cells.enumerated() {
                    let numeric = (2...5).contains(column)
                    let pad = String(repeating: " ", count: widths[column] - cell.count)
                    line += (numeric ? pad + cell : cell + (column == cells.count - 1 ? "" : pad)) + "  "
                }
                lines.append(line.trimmingCharacters(in: .whitespaces))
            }
            lines.append("")
            lines.append("q quits")
        }
        return lines.prefix(max(1, height)).map { String($0.prefix(max(1, width))) }.joined(separator: "\r\n")
    }

    /// One `key=value` line per stage, for a pipe or a file.
    func plainLines(timestamp: Date) -> [String] {
        guard failure == nil else { return [] }
        let time = ISO8601DateFormatter().string(from: timestamp)
        var lines = ["\(time) router health=\(health) received=\(received) rate=\(String(format: "%.1f", rate))"]
        for row in rows {
            var line = "\(time) stage=\(row.name) type=\(row.type) in_per_s=\(Self.rateText(row.inRate))"
            line += " out_per_s=\(Self.rateText(row.outRate)) in=\(row.eventsIn) out=\(row.eventsOut)"
            line += " queue=\(queueText(row).replacingOccurrences(of: " ", with: ","))"
            line += " buffer_bytes=\(row.bufferBytes.map { "\($0)" } ?? "-")"
            line += " health=\(row.health.split(separator: ":").first ?? "?")"
            line +=
                " drops=\(row.drops.isEmpty ? "0" : row.drops.map { "\($0.reason):\($0.count)" }.joined(separator: ","))"
            lines.append(line)
        }
        return lines
    }
}
