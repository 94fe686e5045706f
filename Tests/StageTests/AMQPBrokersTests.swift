import Router
import Testing

@testable import RouterAMQP

/// The config errors of a config whose `out` is an amqp output with `options` (`key: value` lines).
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

private func urls(_ texts: [String]) throws -> [AMQPURL] { try texts.map { try AMQPURL(parsing: $0) } }

@Suite("amqp: several brokers (url as a list, urls)")
struct AMQPBrokersTests {
    @Test func urlList_andURLs_areAccepted() throws {
        #expect(try errors(["url: [amqp://u:p@a/, amqp://u:p@b:5673/]"]) == nil)
        #expect(try errors(["urls: [amqp://u:p@a/, amqp://u:p@b:5673/]"]) == nil)
        #expect(try errors(["url: amqp://u:p@a/"]) == nil)
    }

    @Test func urlList_whenAnItemIsBad_theErrorNamesTheItemAtItsLineAndColumn() throws {
        #expect(
            try errors(["urls:", "  - amqp://u:p@a/", "  - amqp://u:p@b:99999/"]) == """
                router.yaml:10:9: error: outputs.out: urls item 2 of 2: port '99999' in 'amqp://u:***@b:99999/' is \
                not a number from 1 to 65535
                      - amqp://u:p@b:99999/
                        ^
                """)
        let flow = try errors(["url: [amqp://u:p@a/, http://b/]"])
        #expect(
            flow == """
                router.yaml:8:26: error: outputs.out: url item 2 of 2: unknown scheme 'http://' in 'http://b/'; \
                expected amqp:// or amqps:// (TLS)
                    url: [amqp://u:p@a/, http://b/]
                                         ^
                """)
    }

    @Test func urlList_whenMissingDoubledEmptyOrMixed_saysSo() throws {
        let missing = try #require(try errors([]))
        #expect(missing.contains("outputs.out: set 'url' (or 'urls', a list): the broker to connect to"), "\(missing)")
        let both = try #require(try errors(["url: amqp://u:p@a/", "urls: [amqp://u:p@b/]"]))
        #expect(both.hasPrefix("router.yaml:9:11: error: outputs.out: set 'url' or 'urls', not both"), "\(both)")
        let empty = try #require(try errors(["urls: []"]))
        #expect(empty.contains("'urls' is an empty list: name at least one broker"), "\(empty)")
        let mixed = try #require(try errors(["urls: [amqp://u:p@a/, amqps://u:p@b/]"]))
        #expect(
            mixed.contains("'urls' mixes amqp:// and amqps:// brokers: a failover must never drop to plain TCP"),
            "\(mixed)")
    }

    @Test func brokers_connectFromTheStart_andAfterALossGoToTheNextOne() throws {
        var brokers = AMQPBrokers(try urls(["amqp://a/", "amqp://b/", "amqp://c/"]), start: 1)
        let first = try brokers.connect { $0.host }
        #expect(first.connection == "b" && first.failedOverFrom == nil)
        #expect(brokers.note == "connected to amqp://guest:***@b:5672/ (broker 2 of 3); failovers: 0")
        brokers.lost()
        #expect(brokers.note == "not connected (3 brokers); failovers: 0")
        // c is down: the connect goes on to a, and that is a failover from b.
        let second = try brokers.connect { url -> String in
            if url.host == "c" { throw AMQPError("connection refused") }
            return url.host
        }
        #expect(second.connection == "a")
        #expect(second.failedOverFrom?.host == "b")
        #expect(brokers.failovers == 1)
        #expect(brokers.next == 0 && brokers.current == 0)
    }

    @Test func brokers_whenNoneAnswers_theErrorNamesEachAndTheNextTryStartsWhereThisOneDid() throws {
        var brokers = AMQPBrokers(try urls(["amqp://a/", "amqp://b/"]), start: 1)
        #expect(throws: AMQPError.self) { _ = try brokers.connect { _ -> Int in throw AMQPError("refused") } }
        do {
            _ = try brokers.connect { _ -> Int in throw AMQPError("refused") }
        } catch {
            #expect(
                "\(error)"
                    == "no broker answered (2 tried): amqp://guest:***@b:5672/: refused; amqp://guest:***@a:5672/: "
                    + "refused")
        }
        #expect(brokers.next == 1 && brokers.current == nil)
        var single = AMQPBrokers(try urls(["amqp://a/"]))
        #expect(throws: AMQPError("refused")) { _ = try single.connect { _ -> Int in throw AMQPError("refused") } }
        #expect(single.note == nil, "one broker: nothing to say beyond the log")
    }

    @Test func brokers_startAtARandomPosition_soThatRoutersSpreadOverTheList() throws {
        let list = try urls(["amqp://a/", "amqp://b/", "amqp://c/"])
        let starts = Set((0..<200).map { _ in AMQPBrokers(list).next })
        #expect(starts == [0, 1, 2])
    }
}
