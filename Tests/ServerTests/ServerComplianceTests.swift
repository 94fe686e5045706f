import Foundation
import Router
import StageTestKit
import Testing

/// The compliance run for the kinds whose example needs a live server: the RabbitMQ node and the PostgreSQL
/// `make test` starts (scripts/with-test-servers.sh, scripts/postgres-node.sh). Without them these tests fail,
/// rather than skip; the unit tests (RouterTests, StageTests) need neither.
@Suite("compliance: stages that need a server")
struct ServerComplianceTests {
    /// `role/type` of every built-in kind whose example needs something from outside.
    static let typeNames = ((try? StageRegistry(Compliance.builtin))?.kinds ?? []).filter {
        !$0.declaration.example.needs.isEmpty
    }.map { "\($0.role.rawValue)/\($0.declaration.type)" }

    @Test func everyKindThatNeedsAServer_isHere() {
        #expect(Set(Self.typeNames) == ["input/amqp", "output/amqp", "output/postgres"])
    }

    @Test(arguments: typeNames)
    func stage_fromItsExample_passesEntriesCountsThemAndSettlesEachBatchOnce(_ type: String) throws {
        let registry = try StageRegistry(Compliance.builtin + Compliance.harnessKinds)
        let parts = type.split(separator: "/").map(String.init)
        let role = try #require(StageRole(rawValue: parts[0]))
        let kind = try #require(registry.kind(parts[1], role: role))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("routerd-compliance-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let problems = Compliance.run(
            kind, registry: registry,
            environment: try Compliance.environment(directory: directory.path, extra: try Self.servers()))
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// `AMQP_URL` and `POSTGRES_URL` of the servers `make test` starts.
    static func servers() throws -> [String: String] {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["ROUTERD_TEST_RABBITMQ_DIR"],
            let env = try? String(contentsOfFile: directory + "/node.env", encoding: .utf8),
            let port = env.split(separator: "\n").first(where: { $0.hasPrefix("RABBITMQ_NODE_PORT=") })?
                .split(separator: "=").last
        else {
            throw ServerMissing(
                "the amqp stages need a broker: run `make test` (or scripts/with-test-servers.sh swift test)")
        }
        guard let postgres = environment["ROUTERD_TEST_POSTGRES_URL"] else {
            throw ServerMissing(
                "ROUTERD_TEST_POSTGRES_URL is not set: run `make test`, which starts a private PostgreSQL "
                    + "(scripts/postgres-node.sh run -- swift test)")
        }
        return ["AMQP_URL": "amqp://routerd:routerd-test@127.0.0.1:\(port)/", "POSTGRES_URL": postgres]
    }
}

struct ServerMissing: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
