import Logging
import RouterCore

/// The brokers an `amqp` stage may use (`url` as a list, or `urls`), and which one it is connected to.
///
/// A connect tries each broker once, starting where the last one left off: at first a random position, so that
/// many routers with the same list spread over it; after a lost connection, the broker after the one that was lost
/// (the lost one comes last). Connecting to another broker than the one before is a failover: counted, logged
/// with both urls, and shown in `/health` (``StageHealth/note``).
struct AMQPBrokers {
    /// The brokers, in the order written.
    let urls: [AMQPURL]
    /// Where the next connect starts.
    private(set) var next: Int
    /// The broker in use, nil while not connected.
    private(set) var current: Int?
    /// The broker last connected to (kept across a loss, to tell a failover from a reconnect).
    private(set) var last: Int?
    /// How many times a connect went to another broker than the one before.
    private(set) var failovers = 0

    /// `start` nil: a random position (what a stage does); tests pass one.
    init(_ urls: [AMQPURL], start: Int? = nil) {
        precondition(!urls.isEmpty, "the config check refuses an empty list")
        self.urls = urls
        next = start.map { $0 % urls.count } ?? Int.random(in: 0..<urls.count)
    }

    /// The broker in use, or the first the next connect tries: for log lines and errors.
    var inUse: AMQPURL { urls[current ?? next] }

    /// What a connect found: the connection and, when it went to another broker than before, the one it left.
    struct Connected<Connection> {
        let connection: Connection
        let url: AMQPURL
        let failedOverFrom: AMQPURL?
    }

    /// Tries each broker once, from ``next``, until `attempt` succeeds with one. Throws when none did: with one
    /// broker its error as it is, with several an error naming each and why.
    mutating func connect<Connection>(_ attempt: (AMQPURL) throws -> Connection) throws -> Connected<Connection> {
        var failures: [String] = []
        var lastError: (any Error)?
        for step in 0..<urls.count {
            let index = (next + step) % urls.count
            do {
                let connection = try attempt(urls[index])
                let previous = last
                current = index
                last = index
                next = index
                var from: AMQPURL?
                if let previous, previous != index {
                    failovers += 1
                    from = urls[previous]
                }
                return Connected(connection: connection, url: urls[index], failedOverFrom: from)
            } catch {
                failures.append("\(urls[index]): \(error)")
                lastError = error
            }
        }
        if urls.count == 1, let lastError { throw lastError }
        throw AMQPError("no broker answered (\(urls.count) tried): " + failures.joined(separator: "; "))
    }

    /// The connection is lost: the next connect starts at the broker after it.
    mutating func lost() {
        guard let current else { return }
        next = (current + 1) % urls.count
        self.current = nil
    }

    /// The `/health` note: the broker in use (or none) and the failovers so far; nil with one broker.
    var note: String? {
        guard urls.count > 1 else { return nil }
        var text =
            current.map { "connected to \(urls[$0]) (broker \($0 + 1) of \(urls.count))" }
            ?? "not connected (\(urls.count) brokers)"
        text += "; failovers: \(failovers)"
        if let from = failedOverFromLast { text += ", last from \(from)" }
        return text
    }

    /// The broker the last failover left, for the note.
    private(set) var failedOverFromLast: AMQPURL?

    /// Records, logs and shows what a connect found; call after ``connect(_:)`` succeeded.
    mutating func report<Connection>(
        _ connected: Connected<Connection>, logger: Logger, health: StageHealth, metadata: Logger.Metadata,
        failovers counter: Counter
    ) {
        if let from = connected.failedOverFrom {
            failedOverFromLast = from
            counter.add()
            var lines = metadata
            lines["from"] = "\(from)"
            lines["url"] = "\(connected.url)"
            lines["failovers"] = "\(failovers)"
            logger.warning("failed over to another broker", metadata: lines)
        }
        health.setNote(note)
    }
}
