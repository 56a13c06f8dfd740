import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Hummingbird's HTTP/1.1 channel with one change: a request the HTTP parser
/// cannot read gets the service's JSON error, with its request id, and its
/// access event, instead of Hummingbird's bare 400. Two handlers are added to the
/// channel's pipeline: ``RawRequestBytes`` before the parser keeps the last bytes
/// received, so that the event can name what could be read of the request (its
/// method and path, the user agent, the token's user, the purpose, the forwarded
/// address); ``MalformedRequestResponder`` after it catches the parser's error.
struct CareHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    /// The channel every other request goes through.
    let inner: HTTP1Channel
    /// Records a malformed request's event and makes its answer.
    let answer: @Sendable (MalformedRequest) async -> (HTTPResponse, ByteBuffer)

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(RawRequestBytes(), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let answer = self.answer
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            try operations.addHandler(MalformedRequestResponder(answer: answer), position: .before(try operations.handler(type: HTTPConnectionStateHandler.self)))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Keeps the last bytes a connection received (at most ``kept``, the end of what
/// came), read only when the parser fails on them.
final class RawRequestBytes: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// How many of the last bytes are kept.
    static let kept = 16_384
    private(set) var bytes: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytes.append(contentsOf: buffer.readableBytesView.suffix(Self.kept))
        // Trimmed in steps, so that a stream of small reads copies each byte about once.
        if bytes.count > 2 * Self.kept { bytes.removeFirst(bytes.count - Self.kept) }
        context.fireChannelRead(data)
    }
}

/// Catches an error of the HTTP parser (or of the conversion of what it parsed)
/// between two requests and answers it with the service's error (after the
/// answers to the requests before it), then closes the connection. An error
/// inside a request whose head was read (its body's framing) goes on to
/// Hummingbird, where that request's handler meets it reading the body and
/// answers it, journaled, as any refusal.
final class MalformedRequestResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let answer: @Sendable (MalformedRequest) async -> (HTTPResponse, ByteBuffer)
    private var requestsRead = 0
    private var insideRequest = false
    private var responsesWritten = 0
    private var pending: MalformedRequest?
    private var answering = false

    init(answer: @escaping @Sendable (MalformedRequest) async -> (HTTPResponse, ByteBuffer)) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsRead += 1
            insideRequest = true
        case .end:
            insideRequest = false
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd {
            responsesWritten += 1
            answerWhenReady(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !insideRequest else {
            context.fireErrorCaught(error)
            return
        }
        guard pending == nil, !answering else { return }
        let raw = (try? context.pipeline.syncOperations.handler(type: RawRequestBytes.self))?.bytes ?? []
        pending = MalformedRequest(raw: raw, peer: context.channel.remoteAddress?.ipAddress)
        answerWhenReady(context)
    }

    /// Answers the pending malformed request once every request before it is answered.
    private func answerWhenReady(_ context: ChannelHandlerContext) {
        guard let request = pending, !answering, responsesWritten >= requestsRead else { return }
        pending = nil
        answering = true
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: HTTPAnswer.self)
        let answer = self.answer
        promise.completeWithTask { HTTPAnswer(await answer(request)) }
        promise.futureResult.whenSuccess { reply in
            let (handler, context) = bound.value
            var head = reply.response
            head.headerFields[.connection] = "close"
            head.headerFields[.contentLength] = String(reply.body.readableBytes)
            context.write(handler.wrapOutboundOut(.head(head)), promise: nil)
            context.write(handler.wrapOutboundOut(.body(reply.body)), promise: nil)
            context.writeAndFlush(handler.wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.context.close(promise: nil) }
        }
    }

    /// A response and its body, Sendable together.
    private struct HTTPAnswer: Sendable {
        let response: HTTPResponse
        let body: ByteBuffer
        init(_ answer: (HTTPResponse, ByteBuffer)) {
            response = answer.0
            body = answer.1
        }
    }
}

/// What could be read of a request the HTTP parser refused: the last request line
/// in the bytes received and the header fields after it, and the peer's address.
struct MalformedRequest: Sendable {
    /// The method of the last request line found, if any.
    let method: String?
    /// Its target (path and query), if any.
    let target: String?
    /// The header fields after it, names lower-cased, in order.
    let fields: [(name: String, value: String)]
    /// The peer's IP address; nil on a Unix socket.
    let peer: String?

    init(raw: [UInt8], peer: String?) {
        self.peer = peer
        let lines = String(decoding: raw, as: UTF8.self).split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            .map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        guard let start = lines.lastIndex(where: Self.isRequestLine) else {
            method = nil
            target = nil
            fields = []
            return
        }
        let parts = lines[start].split(separator: " ")
        method = String(parts[0])
        target = String(parts[1])
        var fields: [(String, String)] = []
        for line in lines[(start + 1)...] {
            guard !line.isEmpty else { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((line[..<colon].trimmingCharacters(in: .whitespaces).lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        self.fields = fields
    }

    /// The first value of the field `name` (lower-case).
    func field(_ name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// The target's path, without its query.
    var path: String? {
        target.map { String($0.prefix { $0 != "?" }) }
    }

    private static func isRequestLine(_ line: Substring) -> Bool {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        return parts.count == 3 && !parts[0].isEmpty && parts[0].allSatisfy { $0.isASCII && $0.isUppercase } && !parts[1].isEmpty
            && parts[2].hasPrefix("HTTP/")
    }
}
