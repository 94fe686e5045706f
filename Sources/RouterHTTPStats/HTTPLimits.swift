import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// What one client may hold of the HTTP server: a request head of at most ``maxHeadBytes``, a connection for at
/// most ``headerTimeout`` without a whole request, and ``maxConnections`` connections in all.
struct HTTPLimits: Sendable {
    /// Largest request head (request line and headers), in bytes.
    var maxHeadBytes: Int
    /// Longest a connection may go without a whole request: from its opening, or from the end of the previous
    /// response (covers a slow TLS handshake, a slow head or body, and an idle keep-alive connection).
    var headerTimeout: Duration
    /// Most connections open at once.
    var maxConnections: Int

    /// The server's HTTP/1 channel: NIO's decoder refuses a head past ``maxHeadBytes``, and a ``ConnectionGuard``
    /// per connection closes it on a timeout or after the answer to a request it could not parse.
    func http1() -> HTTPServerBuilder {
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: maxHeadBytes, maxHeaderListSize: maxHeadBytes, maxHeaderFieldCount: 100)
        let timeout = TimeAmount.nanoseconds(
            headerTimeout.components.seconds * 1_000_000_000 + headerTimeout.components.attoseconds / 1_000_000_000)
        return .http1(
            configuration: .init(
                additionalChannelHandlers: [ConnectionGuard(timeout: timeout)], httpDecoderConfiguration: decoder))
    }
}

/// One per connection, after the HTTP decoder: closes the connection when a whole request has not arrived within
/// the timeout, and, a second after the `400` for a request that could not be parsed, closes it whatever the client
/// does.
///
/// Why: NIO's decoder keeps what it buffered of a refused head until the channel closes, and Hummingbird, after
/// answering `400`, only half-closes and waits for the client to close. A client that never closes, or that sends
/// a byte of header now and then, held that memory and that connection for as long as it liked.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long a client that sent a head too large gets to read the `400` before the connection closes: closing
    /// at once, with its bytes still arriving, resets the connection and the client may never see the answer.
    static let linger = TimeAmount.seconds(1)

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Requests read whose response has not ended yet.
    private var pending = 0
    private var refused = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, in: timeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, in: timeout)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            // The whole request is in: the clock stops until its response ends.
            pending += 1
            if !refused { disarm() }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case ByteToMessageDecoderError.dataReceivedInErrorState = error {
            // More bytes after a refused head: dropped (NIO has already let go of them) until the linger ends.
            return
        }
        if error is HTTPParserError && !refused {
            // Hummingbird answers 400 and half-closes; the connection closes for good a moment after.
            refused = true
            arm(context, in: timeout + Self.linger)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        context.write(data, promise: promise)
        if refused {
            arm(context, in: Self.linger)
        } else {
            pending = max(0, pending - 1)
            // The next request's time counts from the end of this response.
            if pending == 0 { arm(context, in: timeout) }
        }
    }

    private func arm(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        disarm()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: delay) { channel.close(promise: nil) }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
