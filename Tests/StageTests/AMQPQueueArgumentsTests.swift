import Router
import Testing

@testable import RouterAMQP

/// The config errors of a config whose `out` is an amqp output with `options` (`key: value`).
private func errors(_ options: [String]) throws -> String? {
    let yaml = """
        inputs:
          udp_in: { type: udp, port: 0 }
        outputs:
          out:
            type: amqp
            inputs: [udp_in]
            queue: logs

        """ + options.map { "    \($0)\n" }.joined()
    do {
        _ = try RouterConfig.parse(
            ConfigSource(path: "router.yaml", text: yaml), environment: [:],
            registry: try StageRegistry(StageHarness.builtin))
        return nil
    } catch {
        return "\(error)"
    }
}

@Suite("amqp queue arguments and TLS options")
struct AMQPQueueArgumentsTests {
    @Test func queueArguments_knownOnesAreTyped_andOthersPassAsTheyRead() throws {
        let parsed = try AMQPQueueArguments.parse([
            "x-queue-type": "quorum", "x-max-length": "1000", "x-single-active-consumer": "true",
            "x-custom": "7", "x-dead-letter-exchange": "dead",
        ]).get()
        #expect(
            parsed == [
                AMQPQueueArgument(name: "x-custom", value: .long(7)),
                AMQPQueueArgument(name: "x-dead-letter-exchange", value: .string("dead")),
                AMQPQueueArgument(name: "x-max-length", value: .long(1000)),
                AMQPQueueArgument(name: "x-queue-type", value: .string("quorum")),
                AMQPQueueArgument(name: "x-single-active-consumer", value: .bool(true)),
            ])
    }

    @Test func queueArguments_whenAValueIsWrong_areRefusedBeforeStartAtTheOption() throws {
        let text = try errors(["url: amqp://u:p@h/", "queue_arguments: {x-max-length: lots, x-overflow: block}"])
        #expect(
            text == """
                router.yaml:9:22: error: outputs.out: queue_arguments: 'x-max-length' must be a whole number, got 'lots'
                    queue_arguments: {x-max-length: lots, x-overflow: block}
                                     ^
                router.yaml:9:22: error: outputs.out: queue_arguments: 'x-overflow' must be one of drop-head, \
                reject-publish, reject-publish-dlx, got 'block'
                    queue_arguments: {x-max-length: lots, x-overflow: block}
                                     ^
                """)
    }

    @Test func conflict_isSaidWithTheArgumentAndBothValues() {
        let broker = AMQPError(
            "cannot declare queue 'logs' on amqp://u:***@h:5672/: the broker closed the channel: 406 "
                + "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'logs' in vhost '/': received the "
                + "value 'quorum' of type 'longstr' but current is none")
        #expect(
            AMQPQueueArguments.explainConflict(broker, queue: "logs").message
                == "queue 'logs' already exists with other arguments: x-queue-type is not set on the queue, and this "
                + "stage asks for 'quorum' (queue_arguments); declare it the same way everywhere, or delete the "
                + "queue so that it is declared again")
        let other = AMQPError("cannot declare queue 'logs' on amqp://u:***@h:5672/: the broker closed the channel: 403")
        #expect(AMQPQueueArguments.explainConflict(other, queue: "logs") == other)
    }

    @Test func tlsOptions_withAPlainURL_areRefusedAtTheirLine() throws {
        let text = try errors(["url: amqp://u:p@h/", "tls_ca_file: /etc/hostname"])
        #expect(
            text == """
                router.yaml:9:18: error: outputs.out: 'tls_ca_file' is set but the url is amqp:// (plain TCP): use \
                amqps:// for TLS
                    tls_ca_file: /etc/hostname
                                 ^
                """)
        #expect(try errors(["url: amqps://u:p@h/", "tls_ca_file: /etc/hostname"]) == nil)
        let missing = try #require(try errors(["url: amqps://u:p@h/", "tls_key_file: /nonexistent.key"]))
        #expect(missing.contains("'tls_key_file' needs 'tls_cert_file'"), "\(missing)")
        #expect(missing.contains("cannot read '/nonexistent.key': No such file or directory"), "\(missing)")
    }
}
