import CRabbitMQ
import RepriseSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One AMQP 0-9-1 connection to RabbitMQ through rabbitmq-c, with one channel.
///
/// An actor on its own `BlockingExecutor`: waits for frames (confirms, deliveries) block a
/// dedicated queue, never the cooperative pool, and always with a timeout so callers stay
/// responsive to shutdown. Heartbeats are answered whenever the connection waits for frames.
/// A channel closed by the broker (say, a declare with other arguments) is reopened by the next call.
///
/// ```swift
/// let amqp = try await AMQPConnection.connect(url: "amqp://app:pw@127.0.0.1:5672/%2F")
/// try await amqp.declareExchange("reprise.events", type: .topic)
/// let outcome = try await amqp.publishConfirmed([message])
/// ```
public actor AMQPConnection {
    private let executor: BlockingExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var state: amqp_connection_state_t?
    private let channel: amqp_channel_t = 1
    private var channelOpen = false
    /// Set when the connection dropped (not closed by `close()`): later calls report a loss.
    private var lost = false
    private var confirmsEnabled = false
    /// The delivery tag the broker will give the next message published on this channel in confirm mode.
    private var nextPublishTag: UInt64 = 1
    private let url: ConnectionURL
    private let redactor: SecretRedactor
    public nonisolated let server: String

    private init(url: ConnectionURL) {
        self.url = url
        self.redactor = SecretRedactor(secrets: [url.password])
        self.server = url.redacted
        self.executor = BlockingExecutor(label: "reprise.amqp")
    }

    isolated deinit {
        if let state { amqp_destroy_connection(state) }
    }

    /// Connects and logs in with an `amqp://` or `amqps://` URL (vhost in the path, `%2F` for `/`).
    ///
    /// `amqps://` options in the URL query: `cacert` (CA file), `cert` and `key` (client
    /// certificate), `verify=false` to skip peer verification (tests only).
    public static func connect(
        url text: String, heartbeatSeconds: Int = 30, connectTimeoutSeconds: Int = 10, rpcTimeoutSeconds: Int = 30
    ) async throws(AMQPError) -> AMQPConnection {
        let url: ConnectionURL
        do {
            url = try ConnectionURL(text)
        } catch {
            throw AMQPError(code: .invalidURL, message: error.reason, server: error.redactedURL)
        }
        guard url.scheme == "amqp" || url.scheme == "amqps" else {
            throw AMQPError(code: .invalidURL, message: "scheme must be amqp:// or amqps://, not \(url.scheme)://", server: url.redacted)
        }
        let connection = AMQPConnection(url: url)
        try await connection.open(heartbeat: heartbeatSeconds, connectTimeout: connectTimeoutSeconds, rpcTimeout: rpcTimeoutSeconds)
        return connection
    }

    private func open(heartbeat: Int, connectTimeout: Int, rpcTimeout: Int) throws(AMQPError) {
        guard let state = amqp_new_connection() else {
            throw AMQPError(code: .connectionFailed, message: "amqp_new_connection failed (out of memory)", server: server)
        }
        let tls = url.scheme == "amqps"
        guard let socket = tls ? amqp_ssl_socket_new(state) : amqp_tcp_socket_new(state) else {
            amqp_destroy_connection(state)
            throw AMQPError(code: .connectionFailed, message: "could not create a \(tls ? "TLS" : "TCP") socket", server: server)
        }
        if tls {
            let verify = url.queryValue("verify") != "false"
            amqp_ssl_socket_set_verify_peer(socket, verify ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, verify ? 1 : 0)
            if let caFile = url.queryValue("cacert"), amqp_ssl_socket_set_cacert(socket, caFile) != AMQP_STATUS_OK.rawValue {
                amqp_destroy_connection(state)
                throw AMQPError(code: .connectionFailed, message: "cannot read CA certificate file \(caFile)", server: server)
            }
            if let cert = url.queryValue("cert"), let key = url.queryValue("key"),
                amqp_ssl_socket_set_key(socket, cert, key) != AMQP_STATUS_OK.rawValue
            {
                amqp_destroy_connection(state)
                throw AMQPError(code: .connectionFailed, message: "cannot read client certificate \(cert) or key", server: server)
            }
        }
        var timeout = timeval(tv_sec: connectTimeout, tv_usec: 0)
        let host = url.host.isEmpty ? "127.0.0.1" : url.host
        let status = amqp_socket_open_noblock(socket, host, Int32(url.port ?? (tls ? 5671 : 5672)), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(state)
            throw AMQPError(
                code: status == AMQP_STATUS_TIMEOUT.rawValue ? .connectionTimedOut : .connectionFailed,
                message: Self.statusText(status), operation: "connect", server: server)
        }
        var handshakeTimeout = timeval(tv_sec: connectTimeout, tv_usec: 0)
        _ = amqp_set_handshake_timeout(state, &handshakeTimeout)
        let vhost = url.path.isEmpty ? "/" : url.path
        let reply = reprise_amqp_login_plain(
            state, vhost, 0, 131_072, Int32(heartbeat), url.user ?? "guest", url.password ?? "guest")
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            var error = describe(reply, operation: "login", state: state)
            // RabbitMQ answers a bad user or password with 403 ACCESS_REFUSED, or by closing the socket.
            if error.replyCode == 403 || error.code == .connectionLost {
                error.code = .authenticationFailed
                error.message = "login refused for user '\(url.user ?? "guest")' on vhost '\(vhost)': \(error.message)"
            } else if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                error.code = .connectionTimedOut
            }
            amqp_destroy_connection(state)
            throw error
        }
        var rpc = timeval(tv_sec: rpcTimeout, tv_usec: 0)
        _ = amqp_set_rpc_timeout(state, &rpc)
        self.state = state
        try ensureChannel()
    }

    /// Closes the channel and the connection. Idempotent.
    public func close() {
        guard let state else { return }
        if channelOpen { _ = amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS) }
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
        self.state = nil
        channelOpen = false
    }

    public var isOpen: Bool { state != nil }

    // MARK: - Topology

    public func declareExchange(
        _ name: String, type: AMQPExchangeType = .topic, durable: Bool = true, autoDelete: Bool = false,
        arguments: [String: AMQPFieldValue] = [:]
    ) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        _ = amqp_exchange_declare(
            state, channel, arena.bytes(name), arena.bytes(type.rawValue), 0, durable ? 1 : 0, autoDelete ? 1 : 0, 0,
            arena.table(arguments))
        try checkRPC("exchange.declare \(name)")
    }

    public func deleteExchange(_ name: String) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        _ = amqp_exchange_delete(state, channel, arena.bytes(name), 0)
        try checkRPC("exchange.delete \(name)")
    }

    /// Declares a queue. Pass `x-dead-letter-exchange` and friends in `arguments`.
    @discardableResult
    public func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: [String: AMQPFieldValue] = [:]
    ) throws(AMQPError) -> AMQPQueueInfo {
        try queueDeclare(name, passive: false, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments)
    }

    /// The state of an existing queue (passive declare); `channelClosed` with 404 if it does not exist.
    public func queueInfo(_ name: String) throws(AMQPError) -> AMQPQueueInfo {
        try queueDeclare(name, passive: true, durable: false, exclusive: false, autoDelete: false, arguments: [:])
    }

    private func queueDeclare(
        _ name: String, passive: Bool, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: [String: AMQPFieldValue]
    ) throws(AMQPError) -> AMQPQueueInfo {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        let ok = amqp_queue_declare(
            state, channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0,
            arena.table(arguments))
        try checkRPC("queue.declare \(name)")
        guard let ok else {
            throw AMQPError(code: .protocolError, message: "no queue.declare-ok", operation: "queue.declare \(name)", server: server)
        }
        return AMQPQueueInfo(name: ok.pointee.queue.string, messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
    }

    public func bindQueue(_ queue: String, exchange: String, routingKey: String, arguments: [String: AMQPFieldValue] = [:]) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        _ = amqp_queue_bind(state, channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), arena.table(arguments))
        try checkRPC("queue.bind \(queue) to \(exchange) with '\(routingKey)'")
    }

    /// Routes what `source` routes with `routingKey` on to the exchange `destination` too.
    public func bindExchange(_ destination: String, to source: String, routingKey: String, arguments: [String: AMQPFieldValue] = [:]) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        _ = amqp_exchange_bind(state, channel, arena.bytes(destination), arena.bytes(source), arena.bytes(routingKey), arena.table(arguments))
        try checkRPC("exchange.bind \(destination) to \(source) with '\(routingKey)'")
    }

    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) throws(AMQPError) -> UInt32 {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        let ok = amqp_queue_purge(state, channel, arena.bytes(name))
        try checkRPC("queue.purge \(name)")
        return ok?.pointee.message_count ?? 0
    }

    public func deleteQueue(_ name: String) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        _ = amqp_queue_delete(state, channel, arena.bytes(name), 0, 0)
        try checkRPC("queue.delete \(name)")
    }

    // MARK: - Publishing

    /// Puts the channel in confirm mode: the broker acks every published message once it is safe.
    public func enablePublisherConfirms() throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        guard !confirmsEnabled else { return }
        _ = amqp_confirm_select(state, channel)
        try checkRPC("confirm.select")
        confirmsEnabled = true
        nextPublishTag = 1
    }

    /// Publishes without waiting. In confirm mode, returns the delivery tag the broker will confirm.
    @discardableResult
    public func publish(_ message: AMQPOutgoingMessage) throws(AMQPError) -> UInt64 {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        var properties = amqp_basic_properties_t()
        var flags: amqp_flags_t = reprise_amqp_flag_delivery_mode
        properties.delivery_mode = UInt8(message.properties.persistent ? AMQP_DELIVERY_PERSISTENT.rawValue : AMQP_DELIVERY_NONPERSISTENT.rawValue)
        if let contentType = message.properties.contentType {
            flags |= reprise_amqp_flag_content_type
            properties.content_type = arena.bytes(contentType)
        }
        if let messageID = message.properties.messageID {
            flags |= reprise_amqp_flag_message_id
            properties.message_id = arena.bytes(messageID)
        }
        if let type = message.properties.type {
            flags |= reprise_amqp_flag_type
            properties.type = arena.bytes(type)
        }
        if let timestamp = message.properties.timestamp {
            flags |= reprise_amqp_flag_timestamp
            properties.timestamp = timestamp
        }
        if !message.properties.headers.isEmpty {
            flags |= reprise_amqp_flag_headers
            properties.headers = arena.table(message.properties.headers)
        }
        properties._flags = flags
        let exchange = arena.bytes(message.exchange)
        let routingKey = arena.bytes(message.routingKey)
        let body = arena.bytes(message.body)
        let status = amqp_basic_publish(state, channel, exchange, routingKey, message.mandatory ? 1 : 0, 0, &properties, body)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw lostConnection(status: status, operation: "basic.publish to \(message.exchange)")
        }
        let tag = nextPublishTag
        if confirmsEnabled { nextPublishTag += 1 }
        return tag
    }

    /// Publishes a batch and waits until the broker has confirmed every message.
    ///
    /// Throws `.timedOut` when confirms do not arrive within `timeoutMilliseconds`; the caller
    /// must then treat the whole batch as unconfirmed (and republish: consumers deduplicate).
    public func publishConfirmed(_ messages: [AMQPOutgoingMessage], timeoutMilliseconds: Int = 30_000) throws(AMQPError) -> AMQPPublishOutcome {
        try enablePublisherConfirms()
        guard !messages.isEmpty else { return AMQPPublishOutcome(confirmed: 0, nacked: [], returnedMessageIDs: []) }
        let first = nextPublishTag
        for message in messages { try publish(message) }
        let last = nextPublishTag - 1
        var settledUpTo = first - 1  // every tag <= this one is settled
        var settledSingles = Set<UInt64>()
        var nackedTags: [UInt64] = []
        var returned: [String] = []
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        func settle(_ tag: UInt64, multiple: Bool) {
            if multiple {
                settledUpTo = max(settledUpTo, tag)
            } else {
                settledSingles.insert(tag)
            }
            while settledSingles.remove(settledUpTo + 1) != nil { settledUpTo += 1 }
        }
        while settledUpTo < last {
            guard let frame = try waitFrame(until: deadline, operation: "waiting for publisher confirms") else {
                throw AMQPError(
                    code: .timedOut, message: "\(last - settledUpTo) of \(messages.count) messages not confirmed in \(timeoutMilliseconds) ms",
                    operation: "publisher confirms", server: server)
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            let method = frame.payload.method
            switch method.id {
            case reprise_amqp_basic_ack_method:
                if let ack = method.decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee {
                    settle(ack.delivery_tag, multiple: ack.multiple != 0)
                }
            case reprise_amqp_basic_nack_method:
                if let nack = method.decoded?.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee {
                    let low = nack.multiple != 0 ? settledUpTo + 1 : nack.delivery_tag
                    for tag in low...nack.delivery_tag where tag >= first { nackedTags.append(tag) }
                    settle(nack.delivery_tag, multiple: nack.multiple != 0)
                }
            case reprise_amqp_basic_return_method:
                // The returned message's header and body follow the return method.
                let state = try liveState()
                var message = amqp_message_t()
                let reply = amqp_read_message(state, channel, &message, 0)
                if reply.reply_type == AMQP_RESPONSE_NORMAL {
                    returned.append(message.properties.messageProperties.messageID ?? "")
                    amqp_destroy_message(&message)
                } else {
                    throw describe(reply, operation: "reading a returned message", state: state)
                }
            default:
                try handleUnexpectedMethod(method, operation: "waiting for publisher confirms")
            }
        }
        let nacked = nackedTags.map { Int($0 - first) }
        return AMQPPublishOutcome(confirmed: messages.count - nacked.count, nacked: nacked, returnedMessageIDs: returned)
    }

    // MARK: - Consuming

    /// At most `count` unacknowledged messages are delivered to this channel at once.
    public func setPrefetch(_ count: UInt16) throws(AMQPError) {
        let state = try liveState()
        try ensureChannel()
        _ = amqp_basic_qos(state, channel, 0, count, 0)
        try checkRPC("basic.qos \(count)")
    }

    /// Starts consuming with manual acknowledgement; returns the consumer tag.
    @discardableResult
    public func consume(queue: String, consumerTag: String? = nil, exclusive: Bool = false) throws(AMQPError) -> String {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        let ok = amqp_basic_consume(
            state, channel, arena.bytes(queue), consumerTag.map { arena.bytes($0) } ?? amqp_empty_bytes, 0, 0, exclusive ? 1 : 0,
            amqp_empty_table)
        try checkRPC("basic.consume \(queue)")
        return ok?.pointee.consumer_tag.string ?? consumerTag ?? ""
    }

    /// Waits up to `timeoutMilliseconds` for the next delivery; nil when none arrived in time.
    public func nextDelivery(timeoutMilliseconds: Int) throws(AMQPError) -> AMQPDelivery? {
        let state = try liveState()
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: Int((timeoutMilliseconds % 1000) * 1000))
        let reply = amqp_consume_message(state, &envelope, &timeout, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            return AMQPDelivery(
                deliveryTag: envelope.delivery_tag, redelivered: envelope.redelivered != 0, exchange: envelope.exchange.string,
                routingKey: envelope.routing_key.string, body: envelope.message.body.array,
                properties: envelope.message.properties.messageProperties)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            // A frame other than a delivery: read it and react (a close, or a late confirm to ignore).
            guard let frame = try waitFrame(until: .now + .milliseconds(timeoutMilliseconds), operation: "consuming") else { return nil }
            if frame.frame_type == UInt8(AMQP_FRAME_METHOD) {
                let method = frame.payload.method
                if method.id != reprise_amqp_basic_ack_method && method.id != reprise_amqp_basic_nack_method {
                    try handleUnexpectedMethod(method, operation: "consuming")
                }
            }
            return nil
        default:
            throw describe(reply, operation: "consuming", state: state)
        }
    }

    /// Fetches one message without a consumer (`basic.get`); nil when the queue is empty.
    public func get(queue: String) throws(AMQPError) -> AMQPDelivery? {
        let state = try liveState()
        try ensureChannel()
        let arena = AMQPArena()
        let reply = amqp_basic_get(state, channel, arena.bytes(queue), 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw describe(reply, operation: "basic.get \(queue)", state: state) }
        guard reply.reply.id != AMQP_BASIC_GET_EMPTY_METHOD,
            let ok = reply.reply.decoded?.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        else { return nil }
        var message = amqp_message_t()
        let read = amqp_read_message(state, channel, &message, 0)
        guard read.reply_type == AMQP_RESPONSE_NORMAL else { throw describe(read, operation: "basic.get \(queue)", state: state) }
        defer { amqp_destroy_message(&message) }
        return AMQPDelivery(
            deliveryTag: ok.delivery_tag, redelivered: ok.redelivered != 0, exchange: ok.exchange.string, routingKey: ok.routing_key.string,
            body: message.body.array, properties: message.properties.messageProperties)
    }

    public func ack(_ deliveryTag: UInt64, multiple: Bool = false) throws(AMQPError) {
        let state = try liveState()
        let status = amqp_basic_ack(state, channel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw lostConnection(status: status, operation: "basic.ack \(deliveryTag)") }
    }

    /// Negative acknowledgement: `requeue: false` sends the message to the queue's dead-letter exchange.
    public func nack(_ deliveryTag: UInt64, multiple: Bool = false, requeue: Bool) throws(AMQPError) {
        let state = try liveState()
        let status = amqp_basic_nack(state, channel, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw lostConnection(status: status, operation: "basic.nack \(deliveryTag)") }
    }

    public func reject(_ deliveryTag: UInt64, requeue: Bool) throws(AMQPError) {
        let state = try liveState()
        let status = amqp_basic_reject(state, channel, deliveryTag, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw lostConnection(status: status, operation: "basic.reject \(deliveryTag)") }
    }

    // MARK: - Internals

    private func liveState() throws(AMQPError) -> amqp_connection_state_t {
        guard let state else {
            throw lost
                ? AMQPError(code: .connectionLost, message: "the connection was lost; open a new one", server: server)
                : AMQPError(code: .connectionClosed, message: "the connection is closed", server: server)
        }
        return state
    }

    private func ensureChannel() throws(AMQPError) {
        guard !channelOpen else { return }
        let state = try liveState()
        _ = amqp_channel_open(state, channel)
        channelOpen = true
        confirmsEnabled = false
        do {
            try checkRPC("channel.open")
        } catch {
            channelOpen = false
            throw error
        }
    }

    private func checkRPC(_ operation: String) throws(AMQPError) {
        let state = try liveState()
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        throw describe(reply, operation: operation, state: state)
    }

    /// Waits for one frame until `deadline`; nil on timeout.
    private func waitFrame(until deadline: ContinuousClock.Instant, operation: String) throws(AMQPError) -> amqp_frame_t? {
        let state = try liveState()
        let remaining = max(.zero, deadline - .now)
        let (seconds, attoseconds) = remaining.components
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        var frame = amqp_frame_t()
        let status = amqp_simple_wait_frame_noblock(state, &frame, &timeout)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        guard status == AMQP_STATUS_OK.rawValue else { throw lostConnection(status: status, operation: operation) }
        return frame
    }

    private func handleUnexpectedMethod(_ method: amqp_method_t, operation: String) throws(AMQPError) {
        let reply = amqp_rpc_reply_t(reply_type: AMQP_RESPONSE_SERVER_EXCEPTION, reply: method, library_error: 0)
        switch method.id {
        case reprise_amqp_channel_close_method, reprise_amqp_connection_close_method:
            throw describe(reply, operation: operation, state: try liveState())
        default:
            return  // other methods (a stray consume-ok, a late confirm) need no action here
        }
    }

    /// Builds an error from an RPC reply, answering a server close as the protocol requires.
    private func describe(_ reply: amqp_rpc_reply_t, operation: String, state: amqp_connection_state_t) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let code: AMQPError.Code =
                reply.library_error == AMQP_STATUS_TIMEOUT.rawValue ? .timedOut
                : Self.isConnectionLoss(reply.library_error) ? .connectionLost : .protocolError
            if code == .connectionLost { dropConnection() }
            return AMQPError(code: code, message: Self.statusText(reply.library_error), operation: operation, server: server)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == reprise_amqp_channel_close_method,
                let close = reply.reply.decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            {
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(state, channel, reprise_amqp_channel_close_ok_method, &ok)
                channelOpen = false
                confirmsEnabled = false
                return AMQPError(
                    code: .channelClosed, message: redactor.redact(close.reply_text.string), replyCode: close.reply_code,
                    operation: operation, server: server)
            }
            if reply.reply.id == reprise_amqp_connection_close_method,
                let close = reply.reply.decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            {
                var ok = amqp_connection_close_ok_t(dummy: 0)
                _ = amqp_send_method(state, 0, reprise_amqp_connection_close_ok_method, &ok)
                let error = AMQPError(
                    code: .connectionLost, message: redactor.redact(close.reply_text.string), replyCode: close.reply_code,
                    operation: operation, server: server)
                if self.state == state { dropConnection() }
                return error
            }
            return AMQPError(code: .protocolError, message: "unexpected server method \(reply.reply.id)", operation: operation, server: server)
        default:
            return AMQPError(code: .protocolError, message: "missing RPC reply", operation: operation, server: server)
        }
    }

    private func lostConnection(status: Int32, operation: String) -> AMQPError {
        let code: AMQPError.Code = Self.isConnectionLoss(status) ? .connectionLost : .protocolError
        if code == .connectionLost { dropConnection() }
        return AMQPError(code: code, message: Self.statusText(status), operation: operation, server: server)
    }

    private func dropConnection() {
        if state != nil { lost = true }
        if let state { amqp_destroy_connection(state) }
        state = nil
        channelOpen = false
        confirmsEnabled = false
    }

    private static func isConnectionLoss(_ status: Int32) -> Bool {
        [AMQP_STATUS_CONNECTION_CLOSED, AMQP_STATUS_SOCKET_ERROR, AMQP_STATUS_SOCKET_CLOSED, AMQP_STATUS_HEARTBEAT_TIMEOUT,
         AMQP_STATUS_SSL_ERROR, AMQP_STATUS_TCP_ERROR]
            .map(\.rawValue).contains(status)
    }

    private static func statusText(_ status: Int32) -> String {
        amqp_error_string2(status).map { String(cString: $0) } ?? "rabbitmq-c status \(status)"
    }
}
