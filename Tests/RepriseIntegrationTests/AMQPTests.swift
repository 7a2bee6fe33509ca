import RepriseAMQP
import Testing

/// Every suite that talks to RabbitMQ, run one test at a time: one of them restarts the broker.
@Suite("RabbitMQ (serialized)", .serialized)
struct BrokerSuites {}

extension BrokerSuites {
@Suite("AMQP wrapper (real RabbitMQ)")
struct AMQPTests {
    private func message(_ exchange: String, _ key: String, _ id: String, _ body: String) -> AMQPOutgoingMessage {
        AMQPOutgoingMessage(
            exchange: exchange, routingKey: key, body: Array(body.utf8),
            properties: AMQPMessageProperties(
                contentType: "application/json", messageID: id, type: "OrderCreated",
                headers: ["stream-id": .string("order-1"), "global-position": .int(42), "replayed": .bool(false)]))
    }

    @Test func publishWithConfirmsAndConsumeWithAckRoundTrip() async throws {
        let publisher = try await TestServers.amqp()
        let consumer = try await TestServers.amqp()
        let exchange = TestServers.uniqueName("reprise.test.events")
        let queue = TestServers.uniqueName("reprise.test.queue")
        try await publisher.declareExchange(exchange, type: .topic)
        try await publisher.declareQueue(queue, durable: true)
        try await publisher.bindQueue(queue, exchange: exchange, routingKey: "order.#")

        let batch = (1...50).map { message(exchange, "order.created", "event-\($0)", #"{"n":\#($0)}"#) }
        let outcome = try await publisher.publishConfirmed(batch)
        #expect(outcome.confirmed == 50)
        #expect(outcome.allConfirmedAndRouted)

        try await consumer.setPrefetch(20)
        try await consumer.consume(queue: queue)
        var received: [AMQPDelivery] = []
        while received.count < 50, let delivery = try await consumer.nextDelivery(timeoutMilliseconds: 5_000) {
            received.append(delivery)
            try await consumer.ack(delivery.deliveryTag)
        }
        #expect(received.map { $0.properties.messageID } == (1...50).map { "event-\($0)" })
        let first = try #require(received.first)
        #expect(String(decoding: first.body, as: UTF8.self) == #"{"n":1}"#)
        #expect(first.properties.contentType == "application/json")
        #expect(first.properties.type == "OrderCreated")
        #expect(first.properties.persistent)
        #expect(first.properties.headers["global-position"] == .int(42))
        #expect(first.properties.headers["stream-id"] == .string("order-1"))
        #expect(first.properties.headers["replayed"] == .bool(false))
        #expect(first.routingKey == "order.created")
        #expect(first.redelivered == false)
        // Everything was acked: nothing is left in the queue.
        #expect(try await publisher.queueInfo(queue).messageCount == 0)
        await consumer.close()
        try await publisher.deleteQueue(queue)
        try await publisher.deleteExchange(exchange)
        await publisher.close()
    }

    @Test func unackedMessagesAreRedeliveredToTheNextConsumer() async throws {
        let admin = try await TestServers.amqp()
        let queue = TestServers.uniqueName("reprise.test.redeliver")
        try await admin.declareQueue(queue)
        _ = try await admin.publishConfirmed([message("", queue, "only", "{}")])
        let first = try await TestServers.amqp()
        try await first.consume(queue: queue)
        let delivery = try #require(try await first.nextDelivery(timeoutMilliseconds: 5_000))
        #expect(delivery.redelivered == false)
        await first.close()  // dies before the ack

        let second = try await TestServers.amqp()
        try await second.consume(queue: queue)
        let again = try #require(try await second.nextDelivery(timeoutMilliseconds: 5_000))
        #expect(again.properties.messageID == "only")
        #expect(again.redelivered)
        try await second.ack(again.deliveryTag)
        await second.close()
        try await admin.deleteQueue(queue)
        await admin.close()
    }

    @Test func unroutableMandatoryMessagesAreReturned() async throws {
        let publisher = try await TestServers.amqp()
        let exchange = TestServers.uniqueName("reprise.test.nowhere")
        try await publisher.declareExchange(exchange, type: .topic, autoDelete: false)
        let outcome = try await publisher.publishConfirmed([message(exchange, "nobody.listens", "lost-1", "{}")])
        #expect(outcome.returnedMessageIDs == ["lost-1"])
        #expect(!outcome.allConfirmedAndRouted)
        try await publisher.deleteExchange(exchange)
        await publisher.close()
    }

    @Test func rejectedMessagesGoToTheDeadLetterQueue() async throws {
        let amqp = try await TestServers.amqp()
        let deadLetterExchange = TestServers.uniqueName("reprise.test.dlx")
        let deadLetterQueue = TestServers.uniqueName("reprise.test.parked")
        let queue = TestServers.uniqueName("reprise.test.work")
        try await amqp.declareExchange(deadLetterExchange, type: .fanout)
        try await amqp.declareQueue(deadLetterQueue)
        try await amqp.bindQueue(deadLetterQueue, exchange: deadLetterExchange, routingKey: "")
        try await amqp.declareQueue(queue, arguments: ["x-dead-letter-exchange": .string(deadLetterExchange)])
        _ = try await amqp.publishConfirmed([message("", queue, "poison-1", #"{"bad":true}"#)])
        try await amqp.consume(queue: queue)
        let delivery = try #require(try await amqp.nextDelivery(timeoutMilliseconds: 5_000))
        try await amqp.nack(delivery.deliveryTag, requeue: false)

        let reader = try await TestServers.amqp()
        var parked: AMQPDelivery?
        for _ in 0..<50 where parked == nil {
            parked = try await reader.get(queue: deadLetterQueue)
            if parked == nil { _ = try await reader.nextDelivery(timeoutMilliseconds: 100) }
        }
        let found = try #require(parked)
        #expect(found.properties.messageID == "poison-1")
        #expect(found.properties.headers["x-first-death-reason"] == .string("rejected"))
        try await reader.ack(found.deliveryTag)
        await reader.close()
        await amqp.close()
        let cleanup = try await TestServers.amqp()
        for name in [queue, deadLetterQueue] { try await cleanup.deleteQueue(name) }
        try await cleanup.deleteExchange(deadLetterExchange)
        await cleanup.close()
    }

    @Test func redeclaringWithOtherArgumentsClosesTheChannelWithACode() async throws {
        let amqp = try await TestServers.amqp()
        let queue = TestServers.uniqueName("reprise.test.args")
        try await amqp.declareQueue(queue, durable: true)
        await #expect {
            try await amqp.declareQueue(queue, durable: false)
        } throws: { error in
            guard let error = error as? AMQPError else { return false }
            return error.code == .channelClosed && error.replyCode == 406
        }
        // The channel is reopened for the next call.
        #expect(try await amqp.queueInfo(queue).name == queue)
        try await amqp.deleteQueue(queue)
        await amqp.close()
    }

    @Test func wrongPasswordIsRefusedWithoutThePassword() async throws {
        let password = "definitely-wrong-pw-4713"
        do {
            _ = try await AMQPConnection.connect(url: TestServers.withPassword(TestServers.amqpURL, password))
            Issue.record("login with a wrong password succeeded")
        } catch {
            #expect(error.code == .authenticationFailed)
            #expect(!"\(error)".contains(password))
        }
    }

    @Test func unreachableBrokerFailsWithinTheTimeout() async throws {
        let silent = try SilentServer()
        do {
            _ = try await AMQPConnection.connect(url: TestServers.withPort(TestServers.amqpURL, silent.port), connectTimeoutSeconds: 2)
            Issue.record("connected to a silent server")
        } catch {
            #expect(error.code == .connectionTimedOut)
        }
        await #expect {
            try await AMQPConnection.connect(url: TestServers.withPort(TestServers.amqpURL, try closedPort()), connectTimeoutSeconds: 2)
        } throws: { error in
            (error as? AMQPError)?.code == .connectionFailed
        }
    }
}
}
