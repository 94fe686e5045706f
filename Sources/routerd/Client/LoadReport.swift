import Foundation
import Histogram

/// The load test's final figures, merged over its workers.
struct LoadReport {
    var workers: Int
    /// Entries per second asked for over all workers; 0 for unbounded.
    var offeredRate: Double
    var sent = 0
    var failed = 0
    var refused = 0
    var lastError: String?
    /// From the first worker's start to the last worker's last send, in seconds.
    var seconds = 0.0
    var errorsSent = 0
    var acked = 0
    var nacked = 0
    var strayAcks = 0
    var unackedSequences: [(worker: Int, sequence: Int64)] = []
    var nackReasons: [String: Int] = [:]
    var latency = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    var statsURL: String?
    var stats: ServerStats?
    var statsProblem: String?

    init(workers: [LoadWorker], offeredRate: Double) {
        self.workers = workers.count
        self.offeredRate = offeredRate
        var start = Int64.max
        var end = Int64.min
        for worker in workers {
            let result = worker.result
            sent += result.sent
            failed += result.failed
            refused += result.refused
            lastError = result.lastError ?? lastError
            errorsSent += result.errorsSent
            acked += result.acked
            nacked += result.nacked
            strayAcks += result.strayAcks
            unackedSequences += result.unackedSequences.map { (worker.plan.index, $0) }
            nackReasons.merge(result.nackReasons, uniquingKeysWith: +)
            latency.add(result.latency)
            start = min(start, result.startNanos)
            end = max(end, result.endNanos)
        }
        seconds = end > start ? Double(end - start) / 1e9 : 0
    }

    /// Entries per second actually sent.
    var achievedRate: Double {
        seconds > 0 ? Double(sent) / seconds : 0
    }

    /// Entries sent but not written, when /stats says how many were written.
    var loss: Int? {
        (stats?.written ?? stats?.received).map { sent - $0 }
    }

    private func percentile(_ value: Double) -> Double? {
        latency.totalCount > 0 ? Double(latency.valueAtPercentile(value)) / 1000 : nil
    }

    /// The human-readable report.
    var text: String {
        var lines: [String] = []
        let offered = offeredRate > 0 ? "\(grouped(offeredRate))/s" : "unbounded"
        lines.append(
            "sent:         \(grouped(Double(sent))) entries in \(String(format: "%.2f", seconds)) s by \(workers) "
                + "worker\(workers == 1 ? "" : "s") (offered \(offered))")
        lines.append("rate:         \(grouped(achievedRate)) entries/s achieved")
        if failed > 0 || refused > 0 {
            lines.append(
                "send errors:  \(failed) failed, \(refused) port unreachable (is routerd listening?)"
                    + (lastError.map { "; last: \($0)" } ?? ""))
        }
        lines.append(
            "errors acked: \(acked)/\(errorsSent) ERRORs (\(nacked) nacked, \(unackedSequences.count) unacked)")
        if let p50 = percentile(50), let p99 = percentile(99), let p999 = percentile(99.9) {
            let max = Double(latency.max) / 1000
            lines.append(
                "ack latency:  p50 \(milliseconds(p50))  p99 \(milliseconds(p99))  p99.9 \(milliseconds(p999))  "
                    + "max \(milliseconds(max))")
        } else {
            lines.append("ack latency:  no acks")
        }
        if !unackedSequences.isEmpty {
            let shown = unackedSequences.prefix(20).map { "loadtest-\($0.worker):\($0.sequence)" }
            lines.append(
                "unacked:      " + shown.joined(separator: ", ")
                    + (unackedSequences.count > 20 ? ", ... (\(unackedSequences.count) in all)" : ""))
        }
        for (reason, count) in nackReasons.sorted(by: { $0.key < $1.key }) {
            lines.append("nack reason:  \(count) × \(reason)")
        }
        if let statsURL {
            if let stats {
                let received = stats.received.map { grouped(Double($0)) } ?? "not in /stats"
                let written = stats.written.map { grouped(Double($0)) } ?? "not in /stats"
                lines.append("server:       received \(received), written \(written)")
                if let loss {
                    let percent = sent > 0 ? Double(loss) / Double(sent) * 100 : 0
                    lines.append("loss:         \(loss) (\(String(format: "%.3f", percent)) %)")
                }
            } else {
                lines.append("server:       /stats unavailable at \(statsURL): \(statsProblem ?? "unknown problem")")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The report as one JSON object (what `make bench` reads).
    var json: String {
        var object: [String: Any] = [
            "workers": workers,
            "offered_rate": offeredRate,
            "sent": sent,
            "send_failed": failed,
            "port_unreachable": refused,
            "seconds": seconds,
            "achieved_rate": achievedRate,
            "errors_sent": errorsSent,
            "errors_acked": acked,
            "errors_nacked": nacked,
            "errors_unacked": unackedSequences.count,
            "stray_acks": strayAcks,
            "unacked": unackedSequences.prefix(1000).map { ["worker": $0.worker, "sequence": $0.sequence] },
        ]
        var latencyObject: [String: Any] = ["count": Int(latency.totalCount)]
        if latency.totalCount > 0 {
            latencyObject["p50_ms"] = Double(latency.valueAtPercentile(50)) / 1000
            latencyObject["p99_ms"] = Double(latency.valueAtPercentile(99)) / 1000
            latencyObject["p999_ms"] = Double(latency.valueAtPercentile(99.9)) / 1000
            latencyObject["max_ms"] = Double(latency.max) / 1000
        }
        object["ack_latency"] = latencyObject
        if let lastError { object["last_send_error"] = lastError }
        if !nackReasons.isEmpty { object["nack_reasons"] = nackReasons }
        if let statsURL {
            var statsObject: [String: Any] = ["url": statsURL, "available": stats != nil]
            if let received = stats?.received { statsObject["received"] = received }
            if let written = stats?.written { statsObject["written"] = written }
            if let loss { statsObject["loss"] = loss }
            if let statsProblem { statsObject["problem"] = statsProblem }
            object["stats"] = statsObject
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func milliseconds(_ value: Double) -> String {
        String(format: "%.3f ms", value)
    }
}

/// `1234567.8` as `1,234,568`.
func grouped(_ value: Double) -> String {
    let whole = Int(value.rounded())
    let digits = String(whole.magnitude)
    var result = ""
    for (index, character) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(character)
    }
    return (whole < 0 ? "-" : "") + result
}
