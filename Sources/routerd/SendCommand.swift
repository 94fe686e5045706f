import ArgumentParser
import Filters
import Foundation
import Router
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `routerd send`: the seed's client. Sends sample entries (or the lines of a file) and waits for the acks of
/// the ERROR entries, resending those not acknowledged in time.
struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send sample log entries (or lines from a file) to routerd and wait for ERROR acks.",
        discussion: """
            Without --file, sends --count entries with the seed's fields (timestamp, sequence, app, level, message, \
            host); one in ten is ERROR. With --file, sends each non-empty line as is; lines that are JSON objects \
            with level ERROR and an integer sequence (or seq) are tracked for acks.

            ERROR entries not acknowledged within --ack-timeout are sent again, up to --retries times, the wait \
            doubling each time. Exits 1 when an ERROR entry is still not acknowledged (or was refused) at the end.

            With --format diode, sends the data-diode seed's messages instead, byte for byte as the seed's client \
            makes them: {"client_id": <--client-id, an integer>, "text": "This is being sent via the UDP \
            protocol. #<n>", "token", "checksum"}, the token an HS256 JWT {"iss": "udp_client", "iat", "exp": \
            iat + 30} signed with --secret or SECRET_KEY, the checksum the MD5 of the message as Python's \
            json.dumps(..., sort_keys=True) writes it. --file lines become the texts. --tamper spoils every message one way, to see a `verify` filter reject them. Nothing \
            is acknowledged: the diode is one-way.
            """)

    @OptionGroup var target: TargetOptions

    @Option(help: "Number of sample entries to send (ignored with --file).")
    var count: Int = 20

    @Option(help: "The `app` field of sample entries.")
    var app: String = "client"

    @Option(
        name: .customLong("client-id"),
        help: "The integer `client_id` of every diode message (the seed's client sends 1; its table's column is INT).")
    var clientID: Int = 1

    @Option(
        help: ArgumentHelp(
            "Send the lines of this file as entries, one datagram each; `-` reads stdin.", valueName: "path"))
    var file: String?

    @Option(name: .customLong("ack-timeout"), help: "How long to wait for an ERROR's ack before sending it again.")
    var ackTimeout = DurationArgument(.milliseconds(500))

    @Option(help: "How many times an unacknowledged ERROR entry is sent again (the wait doubles each time).")
    var retries: Int = 3

    @Option(help: "What to send: the log client's entries (seed) or the data-diode seed's signed messages (diode).")
    var format: SendFormat = .seed

    @Option(
        help: ArgumentHelp(
            "The HS256 secret that signs diode tokens; SECRET_KEY in the environment sets the default.",
            valueName: "text"))
    var secret: String?

    @Option(help: "The `iss` claim of diode tokens.")
    var issuer: String = "udp_client"

    @Option(
        name: .customLong("token-lifetime"),
        help: "How long diode tokens are valid: `exp` is `iat` plus this, in whole seconds (the seed's client: 30s).")
    var tokenLifetime = DurationArgument(.seconds(30))

    @Option(
        help: ArgumentHelp(
            "Spoil every diode message: a token signed with another secret (signature), a wrong checksum "
                + "(checksum), a token that expired a minute ago (expired), or another issuer (issuer).",
            valueName: "how"))
    var tamper: TamperArgument?

    @Option(
        help: ArgumentHelp(
            "Entries per second, paced in about a millisecond's worth per sendmmsg call; 0 sends them all at once. "
                + "Diode tokens are then signed as they are sent, so a long run never sends an expired one.",
            valueName: "per-second"))
    var rate: Double = 0

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
        guard rate >= 0 && rate.isFinite else { throw ValidationError("--rate must be 0 (all at once) or more") }
        guard retries >= 0 else { throw ValidationError("--retries must not be negative") }
        guard ackTimeout.nanoseconds > 0 else { throw ValidationError("--ack-timeout must be more than 0") }
        guard tokenLifetime.nanoseconds >= 1_000_000_000 else {
            throw ValidationError("--token-lifetime must be at least 1s")
        }
        if format == .diode {
            guard diodeSecret != nil else {
                throw ValidationError("--format diode needs --secret or SECRET_KEY in the environment")
            }
        } else if tamper != nil {
            throw ValidationError("--tamper applies to --format diode only")
        }
    }

    /// `--secret`, or SECRET_KEY from the environment; nil when neither is set or it is empty.
    private var diodeSecret: String? {
        let value = secret ?? ProcessInfo.processInfo.environment["SECRET_KEY"]
        return value?.isEmpty == false ? value : nil
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let entries: [OutgoingEntry]
        do {
            switch format {
            case .seed: entries = try file.map(OutgoingEntry.lines(ofFile:)) ?? sampleEntries()
            case .diode: entries = try diodeEntries()
            }
        } catch {
            printError("routerd send: \(error)")
            throw ExitCode(2)
        }
        let socket: ClientSocket
        do {
            socket = try ClientSocket(
                host: target.host, port: target.port, sendBufferBytes: target.sndbuf.bytes,
                receiveBufferBytes: 1 << 20)
        } catch {
            printError("routerd send: \(error)")
            throw ExitCode(2)
        }
        var tracker = AckTracker(
            entries: entries, ackTimeoutNanos: ackTimeout.nanoseconds, retries: retries, now: monotonicNanos())
        let first = rate > 0 ? sendPaced(entries, socket: socket) : socket.send(entries.map(\.payload))
        let again = tracker.run(socket)
        let report = tracker.report(
            sent: first, resent: again, entries: entries, peer: socket.peer, portUnreachable: socket.portUnreachable)
        print(report.text, terminator: "")
        if !report.allAcked { throw ExitCode(1) }
    }

    /// Sends `entries` at `rate` per second: each sendmmsg call carries about a millisecond's worth, sent when it
    /// is due. Diode messages are signed again just before they go, so their tokens are fresh however long the
    /// run takes.
    private func sendPaced(_ entries: [OutgoingEntry], socket: ClientSocket) -> SendOutcome {
        var outcome = SendOutcome()
        let slice = max(1, Int(rate / 1000))
        let start = monotonicNanos()
        var index = 0
        while index < entries.count {
            let due = start + Int64(Double(index) / rate * 1_000_000_000)
            let wait = due - monotonicNanos()
            if wait > 0 {
                var pause = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
                var left = timespec()
                while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
            }
            let end = min(entries.count, index + slice)
            let payloads: [[UInt8]]
            if format == .diode {
                let issuedAt = wallClockNanos() / 1_000_000_000
                payloads = (index..<end).map { diodeMessage(index: $0, text: entries[$0].text, issuedAt: issuedAt) }
            } else {
                payloads = entries[index..<end].map(\.payload)
            }
            outcome.add(socket.send(payloads))
            index = end
        }
        return outcome
    }

    /// Signed seed messages: one per --file line (the line is the text) or --count generated ones.
    private func diodeEntries() throws -> [OutgoingEntry] {
        let texts: [String]
        if let file {
            texts = try OutgoingEntry.lines(ofFile: file).map { String(decoding: $0.payload, as: UTF8.self) }
        } else {
            // The seed client's text, its counter from 1.
            texts = (0..<count).map { "This is being sent via the UDP protocol. #\($0 + 1)" }
        }
        let issuedAt = wallClockNanos() / 1_000_000_000
        return texts.enumerated().map { index, text in
            var entry = OutgoingEntry(
                payload: diodeMessage(index: index, text: text, issuedAt: issuedAt), ackSequence: nil, isError: false)
            entry.text = text
            return entry
        }
    }

    /// A diode message with `text`, its token issued at `issuedAt` (seconds).
    private func diodeMessage(index: Int, text: String, issuedAt: Int64) -> [UInt8] {
        DiodeMessage.make(
            clientID: clientID, text: text, secret: Array((diodeSecret ?? "").utf8), issuer: issuer,
            issuedAt: issuedAt, lifetimeSeconds: tokenLifetime.nanoseconds / 1_000_000_000, tamper: tamper?.tamper)
    }

    private func sampleEntries() -> [OutgoingEntry] {
        let host = target.entryHostName
        let messages: [EntryLevel: [String]] = [
            .debug: ["cache lookup", "request headers parsed", "retrying connection pool check"],
            .info: ["user login succeeded", "request served", "job finished", "session started"],
            .warning: ["slow response", "disk usage above 80%", "deprecated API called"],
            .error: ["db timeout", "payment gateway unreachable", "failed to write upload"],
        ]
        return (0..<count).map { index in
            let sequence = Int64(index + 1)
            let level = EntryLevel.forSample(sequence: sequence)
            let choices = messages[level] ?? ["sample entry"]
            let message = choices[index % choices.count]
            let line = seedEntry(
                timestampNanos: wallClockNanos(), sequence: sequence, app: app, level: level, message: message,
                host: host)
            return OutgoingEntry(
                payload: Array(line.utf8), ackSequence: level == .error ? sequence : nil, isError: level == .error)
        }
    }
}

/// What `routerd send` sends.
enum SendFormat: String, ExpressibleByArgument, CaseIterable {
    /// The log client's entries (timestamp, sequence, app, level, message, host).
    case seed
    /// The data-diode seed's signed messages (client_id, text, token, checksum).
    case diode
}

/// `--tamper`: how to spoil diode messages.
enum TamperArgument: String, ExpressibleByArgument, CaseIterable {
    case signature, checksum, expired, issuer

    var tamper: DiodeMessage.Tamper {
        switch self {
        case .signature: .signature
        case .checksum: .checksum
        case .expired: .expired
        case .issuer: .issuer
        }
    }
}

/// One datagram to send, and the sequence to expect an ack for when it is an ERROR entry with a sequence.
struct OutgoingEntry {
    var payload: [UInt8]
    var ackSequence: Int64?
    var isError: Bool
    /// A diode message's text, to sign it again when it is sent later (`--rate`).
    var text = ""

    /// The non-empty lines of a file (or of stdin for `-`), each without its LF or CRLF.
    static func lines(ofFile path: String) throws -> [OutgoingEntry] {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ClientError("cannot read '\(path)'")
            }
            data = contents
        }
        return data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).compactMap { line in
            var bytes = Array(line)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            guard !bytes.isEmpty else { return nil }
            return OutgoingEntry(line: bytes)
        }
    }

    init(payload: [UInt8], ackSequence: Int64?, isError: Bool) {
        self.payload = payload
        self.ackSequence = ackSequence
        self.isError = isError
    }

    /// A line sent as is; it is tracked when it is a JSON object with level ERROR and an integer sequence.
    init(line: [UInt8]) {
        payload = line
        ackSequence = nil
        isError = false
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            let level = object["level"] as? String, level.uppercased() == "ERROR"
        else { return }
        isError = true
        let sequence = object["sequence"] ?? object["seq"]
        ackSequence = sequence as? Int64
    }
}

/// Waits for acks of ERROR entries and resends the late ones: attempt k waits `ackTimeout * 2^k`.
struct AckTracker {
    private struct Pending {
        var payload: [UInt8]
        var attempts: Int
        var deadline: Int64
        var nackReason: String?
    }

    private let ackTimeoutNanos: Int64
    private let retries: Int
    private var pending: [Int64: Pending] = [:]
    private var acked: Set<Int64> = []
    private var nacked: [Int64: String] = [:]
    private var unacked: Set<Int64> = []

    init(entries: [OutgoingEntry], ackTimeoutNanos: Int64, retries: Int, now: Int64) {
        self.ackTimeoutNanos = ackTimeoutNanos
        self.retries = retries
        for entry in entries {
            guard let sequence = entry.ackSequence, pending[sequence] == nil else { continue }
            pending[sequence] = Pending(payload: entry.payload, attempts: 0, deadline: now + ackTimeoutNanos)
        }
    }

    /// Receives acks and resends until every ERROR is acknowledged or out of retries; returns what the resends did.
    mutating func run(_ socket: ClientSocket) -> SendOutcome {
        var outcome = SendOutcome()
        let slots = ReplySlots()
        while !pending.isEmpty {
            let now = monotonicNanos()
            let next = pending.values.map(\.deadline).min() ?? now
            if next > now && socket.waitReadable(nanoseconds: next - now) {
                let count = socket.receiveWaiting(slots)
                for index in 0..<count {
                    guard let reply = AckReply(slots.bytes(index)) else { continue }
                    record(reply)
                }
                continue
            }
            let expired = monotonicNanos()
            var again: [[UInt8]] = []
            for (sequence, entry) in pending where entry.deadline <= expired {
                if entry.attempts >= retries {
                    pending[sequence] = nil
                    if let reason = entry.nackReason { nacked[sequence] = reason } else { unacked.insert(sequence) }
                    continue
                }
                let attempts = entry.attempts + 1
                pending[sequence]?.attempts = attempts
                pending[sequence]?.deadline = expired + ackTimeoutNanos << min(attempts, 20)
                again.append(entry.payload)
            }
            if !again.isEmpty { outcome.add(socket.send(again)) }
        }
        return outcome
    }

    private mutating func record(_ reply: AckReply) {
        if reply.stored {
            // A late ack still counts, even after the entry was given up on.
            let known = pending.removeValue(forKey: reply.sequence) != nil
            let late = nacked.removeValue(forKey: reply.sequence) != nil || unacked.remove(reply.sequence) != nil
            if known || late { acked.insert(reply.sequence) }
        } else if pending[reply.sequence] != nil {
            pending[reply.sequence]?.nackReason = reply.reason ?? "no reason given"
        }
    }

    /// The summary the command prints.
    func report(
        sent first: SendOutcome, resent again: SendOutcome, entries: [OutgoingEntry], peer: String,
        portUnreachable: Int
    ) -> (text: String, allAcked: Bool) {
        var sent = first
        sent.add(again)
        let errors = entries.filter(\.isError).count
        let untracked = entries.filter { $0.isError && $0.ackSequence == nil }.count
        var text = "sent: \(first.sent) to \(peer)\n"
        text += "resent: \(again.sent)\n"
        text += "errors: \(errors)"
        if untracked > 0 { text += " (\(untracked) without a sequence, not tracked)" }
        text += "\nacked: \(acked.count)\n"
        let nackedList = nacked.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
        text += "nacked: \(nacked.count)" + (nackedList.isEmpty ? "" : " [" + nackedList.joined(separator: ", ") + "]")
        let unackedList = unacked.sorted().map(String.init)
        text += "\nunacked: \(unacked.count)"
        text += (unackedList.isEmpty ? "" : " [" + unackedList.joined(separator: ", ") + "]") + "\n"
        if sent.failed > 0 {
            text += "failed sends: \(sent.failed) (\(sent.lastError ?? "unknown error"))\n"
        }
        if portUnreachable > 0 {
            text += "port unreachable: \(portUnreachable) times; is routerd listening on \(peer)?\n"
        }
        return (text, nacked.isEmpty && unacked.isEmpty)
    }
}
