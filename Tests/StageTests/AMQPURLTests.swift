import RouterAMQP
import Testing

@Suite("amqp url")
struct AMQPURLTests {
    @Test func url_whenEveryPartIsGiven_parsesAndMasksThePassword() throws {
        let url = try AMQPURL(parsing: "amqp://routerd:s%40cret@broker.example:5673/logs")
        #expect(url.host == "broker.example")
        #expect(url.port == 5673)
        #expect(url.user == "routerd")
        #expect(url.password == "s@cret")
        #expect(url.virtualHost == "logs")
        #expect(url.description == "amqp://routerd:***@broker.example:5673/logs")
    }

    @Test func url_whenThePasswordHoldsSlashesOrQuestionMarks_theyStayInThePassword() throws {
        // Generated (base64) passwords often hold '/', and `${AMQP_PASSWORD}` puts them in unescaped.
        let url = try AMQPURL(parsing: "amqp://routerd:ab/c?d:e+f=@broker:5673/logs")
        #expect(url.password == "ab/c?d:e+f=")
        #expect(url.user == "routerd")
        #expect(url.host == "broker" && url.port == 5673)
        #expect(url.virtualHost == "logs")
        #expect(url.description == "amqp://routerd:***@broker:5673/logs")
        do {
            _ = try AMQPURL(parsing: "amqp://routerd:ab/cd@broker:99999/")
            Issue.record("a port out of range was accepted")
        } catch {
            #expect(!error.message.contains("ab/cd") && !error.message.contains("cd@"), "\(error.message)")
        }
    }

    @Test func url_whenPartsAreLeftOut_usesRabbitMQsDefaults() throws {
        let url = try AMQPURL(parsing: "amqp://10.0.0.5")
        #expect(url.port == 5672)
        #expect(url.user == "guest" && url.password == "guest")
        #expect(url.virtualHost == "/")
        #expect(try AMQPURL(parsing: "amqp://u:p@h/%2f").virtualHost == "/")
        #expect(try AMQPURL(parsing: "amqp://u:p@[::1]:5000/").host == "::1")
        #expect(try AMQPURL(parsing: "amqp://u:p@[::1]:5000/").port == 5000)
    }

    @Test func url_whenMalformed_saysWhatIsWrongWithoutThePassword() {
        #expect(throws: AMQPError.self) { try AMQPURL(parsing: "broker:5672") }
        do {
            _ = try AMQPURL(parsing: "amqp://u:hunter2@h:99999/")
            Issue.record("a port out of range was accepted")
        } catch {
            #expect(error.message.contains("99999"))
            #expect(!error.message.contains("hunter2"))
        }
        do {
            _ = try AMQPURL(parsing: "http://u:hunter2@h/")
            Issue.record("http was accepted")
        } catch {
            #expect(
                error.message == "unknown scheme 'http://' in 'http://u:***@h/'; expected amqp:// or amqps:// (TLS)")
        }
        #expect(AMQPURL.redact("http://u:hunter2@h/") == "http://u:***@h/")
    }

    @Test func url_whenAMQPS_usesTLSAndPort5671UnlessGiven() throws {
        let url = try AMQPURL(parsing: "amqps://u:hunter2@broker.example/")
        #expect(url.tls)
        #expect(url.port == 5671)
        #expect(url.description == "amqps://u:***@broker.example:5671/")
        let plain = try AMQPURL(parsing: "amqp://u:p@broker.example:5673/")
        #expect(!plain.tls)
        #expect(try AMQPURL(parsing: "AMQPS://u:p@h:6000/").port == 6000)
    }
}
