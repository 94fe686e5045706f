internal import CRabbitMQ
internal import CRouterTLS

#if canImport(Glibc)
    import Glibc
#endif

/// One blocking connection to a RabbitMQ broker with one channel, over rabbitmq-c.
///
/// Every call blocks the calling thread (never longer than the timeouts given at ``init(url:heartbeat:timeout:)``
/// for RPCs), so a connection belongs to one thread of its own: an `amqp` stage's input or output thread, never an
/// event loop. It is not thread-safe and not `Sendable`.
public final class AMQPConnection {
    /// The broker's address (``AMQPURL/description`` masks the password).
    public let url: AMQPURL
    private let state: amqp_connection_state_t
    private let channel: amqp_channel_t = 1
    private var open = false
    private var nextPublishTag: UInt64 = 1
    private var confirming = false

    /// Connects, logs in and opens a channel; throws with the broker's or the socket's reason.
    ///
    /// An `amqps://` url connects over TLS as `tls` says, and a handshake or a certificate check that fails throws
    /// with the reason (`certificate has expired`, `hostname mismatch`, ...); it never falls back to plain TCP.
    ///
    /// - Parameters:
    ///   - heartbeat: the heartbeat interval to ask for (zero: none). The connection sends heartbeats only while
    ///     one of its methods runs, so an idle owner must call ``poll(timeout:)`` more often than this.
    ///   - timeout: the longest a connect, the login or any RPC (declare, bind, qos) may take.
    public init(url: AMQPURL, tls: AMQPTLS = AMQPTLS(), heartbeat: Duration, timeout: Duration) throws(AMQPError) {
        self.url = url
        guard let state = amqp_new_connection() else { throw AMQPError("out of memory for a connection") }
        self.state = state
        // From here on a throw still runs deinit, which destroys the connection (and its socket).
        guard let socket = url.tls ? amqp_ssl_socket_new(state) : amqp_tcp_socket_new(state) else {
            throw AMQPError("out of memory for a socket")
        }
        if url.tls { try AMQPConnection.configure(socket, tls, host: url.host, url: url) }
        let milliseconds = Int32(clamping: timeout.milliseconds)
        var connectTimeout = routerd_amqp_timeval(milliseconds)
        routerd_tls_reset()
        let status = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &connectTimeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            var reason = String(cString: amqp_error_string2(status))
            if url.tls, let failure = AMQPConnection.tlsFailure(status: status) {
                reason = failure
            } else if status == AMQP_STATUS_SOCKET_ERROR.rawValue {
                // rabbitmq-c says only "a socket error occurred"; the system's reason is what users can act on.
                let osError = routerd_amqp_connect_errno(url.host, Int32(url.port), milliseconds)
                if osError > 0 { reason = String(cString: strerror(osError)) }
            }
            throw AMQPError("cannot connect to \(url): \(reason)")
        }
        var rpcTimeout = routerd_amqp_timeval(milliseconds)
        amqp_set_rpc_timeout(state, &rpcTimeout)
        amqp_set_handshake_timeout(state, &rpcTimeout)
        let seconds = Int32(clamping: (heartbeat.milliseconds + 999) / 1000)
        let login = routerd_amqp_login(state, url.virtualHost, seconds, url.user, url.password)
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            var reason = AMQPConnection.describe(login)
            if url.tls, login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                // Over TLS 1.3 a broker that wants a client certificate says so after the handshake, with an alert
                // that only OpenSSL's error queue still holds.
                var text = [CChar](repeating: 0, count: 512)
                routerd_tls_queued_errors(&text, text.count)
                let detail = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !detail.isEmpty { reason = "TLS: \(detail)" }
            }
            throw AMQPError("login to \(url) refused: \(reason)")
        }
        amqp_channel_open(state, channel)
        let reply = amqp_get_rpc_reply(state)
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            let reason = AMQPConnection.describe(reply)
            throw AMQPError("cannot open a channel on \(url): \(reason)")
        }
        open = true
    }

    deinit {
        amqp_destroy_connection(state)
    }

    /// Sets up a TLS socket: the CA file (or the system's store), the client certificate, and verification of the
    /// chain and of the server's name by OpenSSL (which, unlike rabbitmq-c's own name check, matches an IP address
    /// against the certificate's IP entries).
    private static func configure(
        _ socket: OpaquePointer, _ tls: AMQPTLS, host: String, url: AMQPURL
    ) throws(AMQPError) {
        var text = [CChar](repeating: 0, count: 512)
        func message() -> String {
            String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        routerd_tls_reset()
        if let caFile = tls.caFile, amqp_ssl_socket_set_cacert(socket, caFile) != AMQP_STATUS_OK.rawValue {
            routerd_tls_queued_errors(&text, text.count)
            throw AMQPError("cannot read the CA file '\(caFile)' (\(message()))")
        }
        amqp_ssl_socket_set_verify_peer(socket, 1)
        amqp_ssl_socket_set_verify_hostname(socket, 0)
        guard let context = amqp_ssl_socket_get_context(socket) else { throw AMQPError("no TLS context for \(url)") }
        let name = tls.serverName ?? host
        guard
            routerd_tls_configure(
                context, name, tls.verifyServerName ? 1 : 0, tls.caFile == nil ? 1 : 0, &text, text.count)
                == 0
        else { throw AMQPError(message()) }
        if let certFile = tls.certFile, let keyFile = tls.keyFile {
            guard routerd_tls_use_certificate(context, certFile, keyFile, &text, text.count) == 0 else {
                throw AMQPError(message())
            }
        }
    }

    /// Why a TLS connect failed, when TLS is what failed: the certificate check OpenSSL recorded, or the handshake
    /// error (a server that speaks plain TCP on the port shows as `wrong version number`).
    private static func tlsFailure(status: Int32) -> String? {
        var text = [CChar](repeating: 0, count: 512)
        func message() -> String {
            String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        if routerd_tls_last_failure(&text, text.count) == 1 {
            return "TLS: the server's certificate failed verification: \(message())"
        }
        let tlsStatuses = [
            AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
            AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
        ]
        guard tlsStatuses.contains(status) else { return nil }
        routerd_tls_queued_errors(&text, text.count)
        let detail = message()
        return "TLS handshake failed: " + (detail.isEmpty ? String(cString: amqp_error_string2(status)) : detail)
    }

    /// Closes the channel and the connection politely (bounded by the RPC timeout); unacknowledged deliveries
    /// go back to their queue.
    public func close() {
        guard open else { return }
        open = false
        amqp_channel_close(state, channel, Int32(AMQP_REPLY_SUCCESS))
        amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }

    /// Declares a queue (durable unless told otherwise) with `arguments` and returns how many messages it holds.
    ///
    /// A queue that exists with other arguments is an error that names the argument and both values (RabbitMQ's
    /// PRECONDITION_FAILED, reworded); the channel is closed then, so the connection must be made again.
    @discardableResult
    public func declareQueue(
        _ name: String, arguments: [AMQPQueueArgument] = [], durable: Bool = true, passive: Bool = false
    ) throws(AMQPError) -> Int {
        let names = arguments.map { strdup($0.name) }
        let texts = arguments.map { argument -> UnsafeMutablePointer<CChar>? in
            if case .string(let text) = argument.value { return strdup(text) }
            return nil
        }
        defer {
            for pointer in names { free(pointer) }
            for pointer in texts { free(pointer) }
        }
        var table: [routerd_amqp_argument] = []
        for index in arguments.indices {
            var entry = routerd_amqp_argument()
            entry.name = UnsafePointer(names[index])
            switch arguments[index].value {
            case .string:
                entry.kind = Int32(ROUTERD_AMQP_ARG_STRING.rawValue)
                entry.text = UnsafePointer(texts[index])
            case .long(let number):
                entry.kind = Int32(ROUTERD_AMQP_ARG_LONG.rawValue)
                entry.number = number
            case .bool(let flag):
                entry.kind = Int32(ROUTERD_AMQP_ARG_BOOL.rawValue)
                entry.number = flag ? 1 : 0
            }
            table.append(entry)
        }
        let ok = name.withAMQPBytes { queue in
            routerd_amqp_queue_declare(
                state, channel, queue, passive ? 1 : 0, durable ? 1 : 0, table, Int32(table.count))
        }
        do {
            try check("declare queue '\(name)'")
        } catch {
            throw AMQPQueueArguments.explainConflict(error, queue: name)
        }
        return Int(ok?.pointee.message_count ?? 0)
    }

    /// Declares a durable exchange of `type`, or with `type` nil checks that it exists.
    public func declareExchange(_ name: String, type: String?) throws(AMQPError) {
        name.withAMQPBytes { exchange in
            (type ?? "direct").withAMQPBytes { kind in
                _ = amqp_exchange_declare(
                    state, channel, exchange, kind, type == nil ? 1 : 0, 1, 0, 0, amqp_empty_table)
            }
        }
        try check(type == nil ? "find exchange '\(name)'" : "declare exchange '\(name)'")
    }

    /// Binds `queue` to `exchange` with `routingKey`.
    public func bindQueue(_ queue: String, exchange: String, routingKey: String) throws(AMQPError) {
        queue.withAMQPBytes { queueBytes in
            exchange.withAMQPBytes { exchangeBytes in
                routingKey.withAMQPBytes { key in
                    _ = amqp_queue_bind(state, channel, queueBytes, exchangeBytes, key, amqp_empty_table)
                }
            }
        }
        try check("bind queue '\(queue)' to exchange '\(exchange)'")
    }

    /// Puts the channel in confirm mode: the broker acknowledges each publish (see ``poll(timeout:)``), and
    /// ``publish(_:)`` returns the delivery tag those acknowledgements name.
    public func enableConfirms() throws(AMQPError) {
        amqp_confirm_select(state, channel)
        try check("enable publisher confirms")
        confirming = true
        nextPublishTag = 1
    }

    /// Limits the unacknowledged deliveries the broker sends this channel.
    public func setPrefetch(_ count: Int) throws(AMQPError) {
        amqp_basic_qos(state, channel, 0, UInt16(clamping: count), 0)
        try check("set prefetch \(count)")
    }

    /// Starts consuming `queue` with manual acknowledgement; deliveries come from ``nextDelivery(timeout:_:)``.
    public func consume(queue: String) throws(AMQPError) {
        queue.withAMQPBytes { queueBytes in
            _ = amqp_basic_consume(state, channel, queueBytes, amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        }
        try check("consume queue '\(queue)'")
    }

    /// Publishes one persistent message; returns its delivery tag (for confirms). Throws when the socket fails.
    public func publish(_ message: AMQPMessage) throws(AMQPError) -> UInt64 {
        let status = message.exchange.withAMQPBytes { exchange in
            message.routingKey.withAMQPBytes { key in
                message.contentType.withAMQPBytes { contentType in
                    let id = amqp_bytes_t(
                        len: message.messageID.count,
                        bytes: UnsafeMutableRawPointer(mutating: message.messageID.baseAddress))
                    return routerd_amqp_publish(
                        state, channel, exchange, key, message.mandatory ? 1 : 0, contentType, id,
                        message.body.baseAddress, message.body.count)
                }
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("publish to \(url) failed: " + String(cString: amqp_error_string2(status)))
        }
        let tag = nextPublishTag
        nextPublishTag += 1
        return tag
    }

    /// Waits up to `timeout` for the next thing the broker says on its own (publisher confirms, returned
    /// messages) and returns it, or nil when nothing came. Also sends heartbeats that are due.
    /// Throws when the connection is closed by the broker or fails.
    public func poll(timeout: Duration) throws(AMQPError) -> AMQPPublisherEvent? {
        var event = routerd_amqp_event()
        while true {
            routerd_amqp_next_event(state, Int32(clamping: timeout.milliseconds), &event)
            switch UInt32(event.kind) {
            case ROUTERD_AMQP_NONE.rawValue:
                return nil
            case ROUTERD_AMQP_ACK.rawValue:
                return .ack(tag: event.delivery_tag, multiple: event.multiple != 0)
            case ROUTERD_AMQP_NACK.rawValue:
                return .nack(tag: event.delivery_tag, multiple: event.multiple != 0)
            case ROUTERD_AMQP_RETURN.rawValue:
                return .returned(
                    messageID: AMQPConnection.text(&event.message_id),
                    reason: "\(event.reply_code) \(AMQPConnection.text(&event.text))")
            case ROUTERD_AMQP_BLOCKED.rawValue:
                return .blocked(reason: AMQPConnection.text(&event.text))
            case ROUTERD_AMQP_UNBLOCKED.rawValue:
                return .unblocked
            case ROUTERD_AMQP_OTHER.rawValue:
                continue
            default:
                throw lost(&event)
            }
        }
    }

    /// Waits up to `timeoutMillis` until the socket takes more bytes; false when it did not. rabbitmq-c waits
    /// without end for a socket that takes nothing (a broker that stopped reading), so a publish asks first.
    public func waitWritable(timeoutMillis: Int32) -> Bool {
        var entry = pollfd(fd: socketDescriptor, events: Int16(POLLOUT), revents: 0)
        while true {
            let ready = Glibc.poll(&entry, 1, timeoutMillis)
            if ready < 0 && errno == EINTR { continue }
            return ready > 0
        }
    }

    /// Waits up to `timeout` for a delivery; calls `body` with its bytes and returns its tag and redelivered flag,
    /// or returns nil when none came. Throws when the connection is closed by the broker or fails.
    public func nextDelivery(
        timeout: Duration, _ body: (UnsafeRawBufferPointer) -> Void
    ) throws(AMQPError) -> AMQPDelivery? {
        var event = routerd_amqp_event()
        var envelope = amqp_envelope_t()
        while true {
            routerd_amqp_consume(state, Int32(clamping: timeout.milliseconds), &envelope, &event)
            switch UInt32(event.kind) {
            case ROUTERD_AMQP_NONE.rawValue:
                return nil
            case ROUTERD_AMQP_DELIVERY.rawValue:
                body(UnsafeRawBufferPointer(start: envelope.message.body.bytes, count: envelope.message.body.len))
                var delivery = AMQPDelivery(tag: envelope.delivery_tag, redelivered: envelope.redelivered != 0)
                let properties = envelope.message.properties
                if properties._flags & amqp_flags_t(AMQP_BASIC_CONTENT_TYPE_FLAG) != 0 {
                    let type = properties.content_type
                    delivery.contentType = String(
                        decoding: UnsafeRawBufferPointer(start: type.bytes, count: type.len), as: UTF8.self)
                }
                amqp_destroy_envelope(&envelope)
                return delivery
            case ROUTERD_AMQP_OTHER.rawValue, ROUTERD_AMQP_ACK.rawValue, ROUTERD_AMQP_NACK.rawValue,
                ROUTERD_AMQP_BLOCKED.rawValue, ROUTERD_AMQP_UNBLOCKED.rawValue:
                continue
            default:
                throw lost(&event)
            }
        }
    }

    /// Acknowledges a delivery (and with `multiple` every earlier one on this channel).
    public func ack(_ tag: UInt64, multiple: Bool) throws(AMQPError) {
        let status = amqp_basic_ack(state, channel, tag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("ack to \(url) failed: " + String(cString: amqp_error_string2(status)))
        }
    }

    /// Refuses a delivery (and with `multiple` every earlier unacknowledged one), putting it back in its queue
    /// when `requeue`.
    public func nack(_ tag: UInt64, multiple: Bool, requeue: Bool) throws(AMQPError) {
        let status = amqp_basic_nack(state, channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("nack to \(url) failed: " + String(cString: amqp_error_string2(status)))
        }
    }

    /// The socket, for poll(2) together with other descriptors.
    public var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether frames or bytes are already read and waiting, so that polling the socket would miss them.
    public var hasBufferedInput: Bool {
        amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    private func check(_ what: String) throws(AMQPError) {
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        throw AMQPError("cannot \(what) on \(url): \(AMQPConnection.describe(reply))")
    }

    private func lost(_ event: inout routerd_amqp_event) -> AMQPError {
        open = false
        return AMQPError("connection to \(url) lost: \(AMQPConnection.text(&event.text))")
    }

    private static func describe(_ reply: amqp_rpc_reply_t) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = routerd_amqp_describe_reply(reply, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func text<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// How an `amqps://` connection checks its server, and the client certificate it shows.
public struct AMQPTLS: Sendable, Equatable {
    /// PEM file of the CAs to trust; nil: the system's store.
    public var caFile: String?
    /// PEM client certificate (with ``keyFile``), or nil.
    public var certFile: String?
    /// PEM private key of ``certFile``.
    public var keyFile: String?
    /// The name the server's certificate must be for; nil: the url's host.
    public var serverName: String?
    /// Whether the certificate must be for the server's name (the chain is always checked).
    public var verifyServerName: Bool

    /// Makes the settings (by default: the system's CAs, no client certificate, the name checked).
    public init(
        caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
        verifyServerName: Bool = true
    ) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.verifyServerName = verifyServerName
    }
}

/// One message to publish. Its buffers are only read during ``AMQPConnection/publish(_:)``.
public struct AMQPMessage {
    /// The exchange (`""` is the default exchange, which routes by queue name).
    public var exchange: String
    /// The routing key.
    public var routingKey: String
    /// The content type property.
    public var contentType: String
    /// Whether the broker returns the message when no queue takes it (instead of dropping it).
    public var mandatory: Bool
    /// The message id property.
    public var messageID: UnsafeRawBufferPointer
    /// The body.
    public var body: UnsafeRawBufferPointer

    /// Makes a message.
    public init(
        exchange: String, routingKey: String, contentType: String, mandatory: Bool, messageID: UnsafeRawBufferPointer,
        body: UnsafeRawBufferPointer
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.contentType = contentType
        self.mandatory = mandatory
        self.messageID = messageID
        self.body = body
    }
}

/// What a broker says to a publisher on its own.
public enum AMQPPublisherEvent: Sendable, Equatable {
    /// The broker took responsibility for the message with `tag` (and every earlier one when `multiple`).
    case ack(tag: UInt64, multiple: Bool)
    /// The broker could not take the message(s): publish again.
    case nack(tag: UInt64, multiple: Bool)
    /// A mandatory message no queue took (its ack follows).
    case returned(messageID: String, reason: String)
    /// The broker stopped reading what this connection publishes (a memory or disk alarm: `reason`).
    case blocked(reason: String)
    /// The broker reads publishes again.
    case unblocked
}

/// One consumed message's delivery tag and whether the broker delivered it before.
public struct AMQPDelivery: Sendable, Equatable {
    /// The channel's delivery tag, for ``AMQPConnection/ack(_:multiple:)``.
    public var tag: UInt64
    /// The broker delivered it before without an ack (so it may have been processed already).
    public var redelivered: Bool
    /// The message's content_type property (empty when it has none).
    public var contentType = ""

    /// Makes a delivery.
    public init(tag: UInt64, redelivered: Bool, contentType: String = "") {
        self.tag = tag
        self.redelivered = redelivered
        self.contentType = contentType
    }

    /// Whether the body holds several entries, one a line (`application/x-ndjson`, what `batch_per_message`
    /// publishes; parameters after `;` are ignored).
    public var holdsEntryLines: Bool {
        var media = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        while media.first == " " { media.removeFirst() }
        while media.last == " " { media.removeLast() }
        return media.lowercased() == AMQPDelivery.entryLinesType
    }

    /// `application/x-ndjson`: newline-delimited entries, one message many entries.
    public static let entryLinesType = "application/x-ndjson"
}

extension String {
    fileprivate func withAMQPBytes<Result>(_ body: (amqp_bytes_t) -> Result) -> Result {
        var copy = self
        return copy.withUTF8 { utf8 in
            body(amqp_bytes_t(len: utf8.count, bytes: UnsafeMutableRawPointer(mutating: utf8.baseAddress)))
        }
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
