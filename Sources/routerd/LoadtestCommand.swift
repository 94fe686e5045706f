import ArgumentParser
import Foundation
import Router
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `routerd loadtest`: the seed's multi-threaded load test, with batched sends, paced rates and ack latency.
struct LoadtestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Send entries to routerd at a steady rate from several workers and report rate and ack latency.",
        discussion: """
            Each worker has its own socket and thread, sends batches of up to 64 entries (at most a millisecond's \
            worth) per sendmmsg call, paced by a token bucket that saves up at most 20 ms of tokens: a sender held \
            up by the scheduler catches up on that much, and a longer stall lowers the achieved rate instead of \
            turning into a burst. It reads the acks of its ERROR entries on the same socket. Entries carry app \
            `loadtest-<worker>` and sequences 1, 2, 3, ... per worker, so a written file can be checked entry by \
            entry.

            On a terminal a progress line is updated four times a second on stderr. The report (or, with --json, \
            one JSON object) goes to stdout. Ctrl-C stops sending and still prints the report.
            """)

    @OptionGroup var target: TargetOptions

    @Option(help: "Sender threads, each with its own socket.")
    var workers: Int = 4

    @Option(help: "Entries per second over all workers; 0 sends as fast as possible.")
    var rate: Double = 1000

    @Option(help: "Entries to send over all workers (default 10000; no limit when only --duration is given).")
    var total: Int?

    @Option(help: ArgumentHelp("Stop sending after this long (e.g. 30s).", valueName: "duration"))
    var duration: DurationArgument?

    @Option(name: .customLong("error-ratio"), help: "Fraction of entries that are ERROR (acknowledged by routerd).")
    var errorRatio: Double = 0.1

    @Option(name: .customLong("message-bytes"), help: "Length of each entry's message field.")
    var messageBytes: Int = 40

    @Option(name: .customLong("ack-wait"), help: "How long to keep waiting for acks after the last send.")
    var ackWait = DurationArgument(.seconds(2))

    @Option(
        name: .customLong("stats-url"),
        help: ArgumentHelp(
            "routerd's /stats URL (http_stats output); read after the run to report received, written and loss.",
            valueName: "url"))
    var statsURL: String?

    @Option(name: .customLong("stats-wait"), help: "How long to wait for /stats to show every entry written.")
    var statsWait = DurationArgument(.seconds(6))

    @Flag(help: "Print the final report as one JSON object.")
    var json = false

    func validate() throws {
        guard workers >= 1 && workers <= 256 else { throw ValidationError("--workers must be in 1...256") }
        guard rate >= 0 && rate.isFinite else { throw ValidationError("--rate must be 0 (unbounded) or more") }
        guard (0...1).contains(errorRatio) else { throw ValidationError("--error-ratio must be in 0...1") }
        guard (0...60_000).contains(messageBytes) else { throw ValidationError("--message-bytes must be in 0...60000") }
        if let total, total < 0 { throw ValidationError("--total must not be negative") }
        if let duration, duration.nanoseconds <= 0 { throw ValidationError("--duration must be more than 0") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        signal(SIGINT) { _ in loadStopRequested.store(true, ordering: .relaxed) }
        let total = self.total ?? (duration == nil ? 10_000 : nil)
        let start = monotonicNanos()
        let deadline = duration.map { start + $0.nanoseconds }
        let hostName = target.entryHostName
        var loadWorkers: [LoadWorker] = []
        for index in 0..<workers {
            let share = total.map { $0 / workers + (index < $0 % workers ? 1 : 0) }
            let plan = LoadWorkerPlan(
                index: index, rate: rate / Double(workers), total: share, deadlineNanos: deadline,
                ackWaitNanos: ackWait.nanoseconds, errorsPerMillion: Int64((errorRatio * 1_000_000).rounded()),
                messageBytes: messageBytes, hostName: hostName)
            do {
                loadWorkers.append(
                    try LoadWorker(
                        plan: plan, host: target.host, port: target.port, sendBufferBytes: target.sndbuf.bytes))
            } catch {
                printError("routerd loadtest: \(error)")
                throw ExitCode(2)
            }
        }
        var threads: [WorkerThread] = []
        for worker in loadWorkers {
            let thread = WorkerThread(name: "loadtest-\(worker.plan.index)") { worker.run() }
            do {
                try thread.start()
            } catch {
                printError("routerd loadtest: \(error)")
                loadStopRequested.store(true, ordering: .relaxed)
                break
            }
            threads.append(thread)
        }
        showProgress(loadWorkers, started: threads.count)
        for thread in threads { thread.join() }
        var report = LoadReport(workers: loadWorkers, offeredRate: rate)
        if let statsURL {
            report.statsURL = statsURL
            do {
                report.stats = try waitForStats(statsURL, sent: report.sent)
            } catch {
                report.statsProblem = "\(error)"
            }
        }
        print(json ? report.json : report.text, terminator: json ? "\n" : "")
        if report.sent == 0 && (total ?? 1) > 0 { throw ExitCode(1) }
    }

    /// Reads /stats until it shows every sent entry written (or received, when it does not count writes), until
    /// it stops changing for a second, or until --stats-wait has passed.
    private func waitForStats(_ url: String, sent: Int) throws -> ServerStats {
        let deadline = monotonicNanos() + statsWait.nanoseconds
        var latest = try StatsReader.read(url)
        while monotonicNanos() < deadline {
            guard let done = latest.written ?? latest.received, done < sent else { break }
            usleep(250_000)
            latest = try StatsReader.read(url)
        }
        return latest
    }

    /// Prints `sent, rate, acks` on stderr four times a second while the workers run, when stderr is a terminal.
    private func showProgress(_ workers: [LoadWorker], started: Int) {
        let terminal = isatty(STDERR_FILENO) == 1
        var lastSent = 0
        var lastTime = monotonicNanos()
        var printed = false
        while workers.prefix(started).contains(where: { !$0.progress.finished.load(ordering: .acquiring) }) {
            usleep(250_000)
            guard terminal else { continue }
            let sent = workers.reduce(0) { $0 + $1.progress.sent.load(ordering: .relaxed) }
            let acked = workers.reduce(0) { $0 + $1.progress.acked.load(ordering: .relaxed) }
            let errors = workers.reduce(0) { $0 + $1.progress.errorsSent.load(ordering: .relaxed) }
            let now = monotonicNanos()
            let rate = Double(sent - lastSent) / (Double(max(1, now - lastTime)) / 1e9)
            lastSent = sent
            lastTime = now
            let line = "\r\u{1B}[Ksent \(grouped(Double(sent)))  rate \(grouped(rate))/s  acks \(acked)/\(errors)"
            FileHandle.standardError.write(Data(line.utf8))
            printed = true
        }
        if printed { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
