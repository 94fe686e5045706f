import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A seed-style message: client_id a JSON integer for even `sequence`s and a string holding one for odd ones, as
/// senders do both.
private func seedMessage(_ sequence: Int) -> String {
    let clientID = sequence % 2 == 0 ? "\(sequence)" : "\"\(sequence)\""
    return "{\"client_id\":\(clientID),\"text\":\"message \(sequence) \\u00e9 ✓\",\"token\":\"tok-\(sequence)\","
        + "\"checksum\":\"md5-\(sequence)\",\"seq\":\(sequence)}"
}

/// The data-diode seed's table, made by the seed's own DDL (its consumer's `CREATE TABLE`).
private let seedDDL =
    "CREATE TABLE IF NOT EXISTS udp_messages (id SERIAL PRIMARY KEY, client_id INT, text TEXT, token TEXT, "
    + "checksum TEXT, received_at TIMESTAMP DEFAULT NOW())"

/// The counters of stage `name` in /stats.
private func counters(of name: String, port: UInt16) throws -> [String: Any] {
    let stages = try #require(try httpGet(port: port, "/stats").json()["stages"] as? [[String: Any]])
    return try #require(stages.first { $0["name"] as? String == name }?["counters"] as? [String: Any])
}

/// Every `events_dropped{reason}` added up.
private func droppedTotal(_ counters: [String: Any]) -> Int {
    (counters["events_dropped"] as? [String: [String: Int]])?["reason"]?.values.reduce(0, +) ?? 0
}

/// A labelled counter's value (`rejected{reason}`), or nil.
private func labelled(_ counters: [String: Any], _ name: String, _ label: String, _ value: String) -> Int? {
    (counters[name] as? [String: [String: Int]])?[label]?[value]
}

@Suite("routerd binary: postgres output")
struct PostgresTests {
    @Test func postgres_storesEveryEntryOfAUDPStreamInTheTableItCreates_whichHasTheSeedsColumnTypes() throws {
        let database = try TestPostgres.freshDatabase()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  store: { type: postgres, inputs: [udp_in], url: "\(database)" }
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let total = 10_000
        try UDPClient().send((1...total).map(seedMessage), port: udpPort)
        try waitUntil("\(total) rows in udp_messages", timeout: 60) { () -> Bool? in
            try TestPostgres.count(database, "SELECT count(*) FROM udp_messages") == total ? true : nil
        }
        // The seed's table, column for column: what its consumer's CREATE TABLE makes.
        let columns = try TestPostgres.rows(
            database,
            "SELECT column_name, data_type, coalesce(column_default, '') FROM information_schema.columns "
                + "WHERE table_name = 'udp_messages' ORDER BY ordinal_position")
        #expect(
            columns == [
                ["id", "integer", "nextval('udp_messages_id_seq'::regclass)"], ["client_id", "integer", ""],
                ["text", "text", ""], ["token", "text", ""], ["checksum", "text", ""],
                ["received_at", "timestamp without time zone", "now()"],
            ])
        // received_at is routerd's receive time as UTC wall time, whatever the session's time zone.
        let rows = try TestPostgres.rows(
            database,
            "SET TIME ZONE 'America/New_York'; SELECT client_id, text, token, checksum, "
                + "received_at BETWEEN (now() AT TIME ZONE 'UTC') - interval '10 minutes' "
                + "AND (now() AT TIME ZONE 'UTC') + interval '1 minute' FROM udp_messages ORDER BY client_id")
        #expect(rows.count == total)
        for (index, row) in rows.enumerated() {
            let sequence = index + 1
            let expected = ["\(sequence)", "message \(sequence) é ✓", "tok-\(sequence)", "md5-\(sequence)", "t"]
            #expect(row == expected, "row \(sequence)")
            if row != expected { break }
        }
        #expect(try TestPostgres.count(database, "SELECT count(*) FROM udp_messages WHERE client_id = 1") == 1)
        let store = try counters(of: "store", port: httpPort)
        #expect(store["inserted"] as? Int == total)
        #expect(labelled(store, "events_out", "port", "default") == total)
        #expect(labelled(store, "events_out", "port", "rejected") == 0)
        #expect(try routerd.terminate() == 0, "stderr:\n\(routerd.logLines.joined(separator: "\n"))")
    }

    @Test func postgres_intoTheTableTheSeedsConsumerMade_storesWhatTheSeedsQueriesFind() throws {
        let database = try TestPostgres.freshDatabase()
        try TestPostgres.psql(database, seedDDL)
        // The same table without token, in a schema of its own and with a name that needs quoting.
        try TestPostgres.psql(
            database,
            "CREATE SCHEMA diode; CREATE TABLE diode.\"Udp Messages\" (id SERIAL PRIMARY KEY, client_id INT, "
                + "text TEXT, checksum TEXT, received_at TIMESTAMP DEFAULT NOW())")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  store: { type: postgres, inputs: [udp_in], url: "\(database)", create_table: false }
                  other: { type: postgres, inputs: [udp_in], url: "\(database)", table: "diode.Udp Messages" }
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        // The seed's client's messages: client_id a JSON integer, the same client sending several.
        let messages = (1...300).map { sequence in
            "{\"client_id\":\(sequence % 3 + 1),\"text\":\"hello \(sequence)\",\"token\":\"tok-\(sequence)\","
                + "\"checksum\":\"sum-\(sequence)\"}"
        }
        // Two the seed's client_id INT cannot take, in the middle of the stream: refused, the rest stored.
        let refused = [
            #"{"client_id":"abc","text":"bad","token":"t","checksum":"c"}"#,
            #"{"client_id":1.5,"text":"bad","token":"t","checksum":"c"}"#,
        ]
        try UDPClient().send(Array(messages[..<150]) + refused + messages[150...], port: udpPort)
        try waitUntil("300 rows in each table", timeout: 30) { () -> Bool? in
            try TestPostgres.count(database, "SELECT count(*) FROM udp_messages") == 300
                && TestPostgres.count(database, "SELECT count(*) FROM diode.\"Udp Messages\"") == 300 ? true : nil
        }
        let rows = try TestPostgres.rows(
            database, "SELECT client_id, text, token, checksum FROM udp_messages WHERE client_id = 1 ORDER BY id")
        let expected = (1...300).filter { $0 % 3 == 0 }.map {
            ["1", "hello \($0)", "tok-\($0)", "sum-\($0)"]
        }
        #expect(rows == expected)
        #expect(
            try TestPostgres.count(
                database,
                "SELECT count(*) FROM udp_messages WHERE id IS NOT NULL AND received_at IS NOT NULL "
                    + "AND received_at > (now() AT TIME ZONE 'UTC') - interval '10 minutes'") == 300)
        // The table was not changed: no entry column was added, no type altered.
        #expect(
            try TestPostgres.psql(
                database,
                "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                    + "FROM information_schema.columns WHERE table_name = 'udp_messages'"
            )
            .trimmingCharacters(in: .whitespacesAndNewlines)
                == "id integer, client_id integer, text text, token text, checksum text, "
                + "received_at timestamp without time zone")
        let skipped = routerd.logs("the table lacks some of the seed's columns; they are not filled")
        #expect(skipped.count == 1, "\(skipped)")
        #expect(skipped.first?["stage"] as? String == "other")
        #expect(skipped.first?["columns"] as? String == "token")
        for name in ["store", "other"] {
            let store = try counters(of: name, port: httpPort)
            #expect(store["inserted"] as? Int == 300, "\(name)")
            #expect(labelled(store, "rejected", "reason", "bad_value") == 2, "\(name)")
            #expect(labelled(store, "events_out", "port", "rejected") == 2, "\(name)")
            #expect(store["retries"] as? Int == 0, "\(name)")
        }
        #expect(try TestPostgres.count(database, "SELECT count(*) FROM udp_messages WHERE text = 'bad'") == 0)
        #expect(try routerd.terminate() == 0, "stderr:\n\(routerd.logLines.joined(separator: "\n"))")
    }

    @Test func postgres_whenTheDatabaseRefusesRows_sendsThemToRejectedWithItsMessageAndCommitsTheRest() throws {
        let database = try TestPostgres.freshDatabase()
        try TestPostgres.psql(
            database,
            "CREATE TABLE events (id bigserial PRIMARY KEY, seq integer NOT NULL, message text, "
                + "level text CHECK (level <> 'BAD'), at timestamptz NOT NULL, entry jsonb NOT NULL)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let deadLetters = directory.appendingPathComponent("dead-letter.log")
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  store:
                    type: postgres
                    inputs: [udp_in]
                    url: "\(database)"
                    table: events
                    create_table: false
                    columns: { seq: sequence, message: message, level: level, at: $received_at, entry: $entry }
                  dead: { type: file, inputs: [store.rejected], path: "\(deadLetters.path)", format: dead_letter }
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        var datagrams = (1...200).map { seedEntry(sequence: $0, level: "INFO", message: "ok \($0)") }
        datagrams[12] = datagrams[12].replacingOccurrences(of: "\"sequence\":13", with: "\"sequence\":\"abc\"")
        datagrams[41] = seedEntry(sequence: 42, level: "BAD", message: "refused by a check")
        datagrams[99] = "not json at all"
        datagrams[120] = datagrams[120].replacingOccurrences(of: "\"sequence\":121", with: "\"sequence\":1.5")
        datagrams[150] = datagrams[150].replacingOccurrences(
            of: "\"sequence\":151", with: "\"sequence\":4294967296")
        // A string holding an integer is an integer to an integer column.
        datagrams[170] = datagrams[170].replacingOccurrences(of: "\"sequence\":171", with: "\"sequence\":\"171\"")
        // Sent as one burst, so that most of it arrives in a few batches that each hold a refused row.
        try UDPClient().send(datagrams, port: udpPort, burst: 1000)
        try waitUntil("five dead letters", timeout: 30) { fileLines(deadLetters).count == 5 ? true : nil }
        try waitUntil("195 rows", timeout: 30) { () -> Bool? in
            try TestPostgres.count(database, "SELECT count(*) FROM events") == 195 ? true : nil
        }
        let stored = try TestPostgres.rows(database, "SELECT seq, message, level FROM events ORDER BY seq")
        let expected = (1...200).filter { ![13, 42, 100, 121, 151].contains($0) }
        #expect(stored.map { $0.first ?? "" } == expected.map(String.init))
        #expect(stored.first == ["1", "ok 1", "INFO"])

        let letters = try fileLines(deadLetters).map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let bySequence = Dictionary(
            letters.map { (($0["entry"] as? String) ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        let badNumber = try #require(bySequence[datagrams[12]])
        #expect(badNumber["reason"] as? String == "bad_value")
        #expect(badNumber["detail"] as? String == "column seq (integer): \"abc\" is not an integer")
        let fraction = try #require(bySequence[datagrams[120]])
        #expect(fraction["reason"] as? String == "bad_value")
        #expect(fraction["detail"] as? String == "column seq (integer): 1.5 is not an integer")
        let tooLarge = try #require(bySequence[datagrams[150]])
        #expect(
            tooLarge["detail"] as? String
                == "column seq (integer): 4294967296 is out of range for -2147483648...2147483647")
        let badLevel = try #require(bySequence[datagrams[41]])
        #expect(badLevel["reason"] as? String == "rejected_by_database")
        let checkMessage = try #require(badLevel["detail"] as? String)
        #expect(
            checkMessage.hasPrefix("new row for relation \"events\" violates check constraint \"events_level_check\""))
        #expect(checkMessage.hasSuffix("(SQLSTATE 23514)"))
        let notJSON = try #require(bySequence["not json at all"])
        #expect(notJSON["reason"] as? String == "not_json")

        let store = try counters(of: "store", port: httpPort)
        #expect(store["inserted"] as? Int == 195)
        #expect(labelled(store, "rejected", "reason", "rejected_by_database") == 1)
        #expect(labelled(store, "rejected", "reason", "bad_value") == 3)
        #expect(labelled(store, "rejected", "reason", "not_json") == 1)
        #expect(labelled(store, "events_out", "port", "rejected") == 5)
        // A refused row never holds its batch back: nothing was retried.
        #expect(store["retries"] as? Int == 0)
        #expect(droppedTotal(store) == 0)
        #expect(try routerd.terminate() == 0)
    }

    @Test func postgres_whenTheCommitItselfFails_theRowsAreNotCountedAndTheRefusedOneIsFound() throws {
        // A deferred constraint is checked at COMMIT, after the INSERT succeeded: only the commit's answer tells.
        let database = try TestPostgres.freshDatabase()
        try TestPostgres.psql(
            database,
            "CREATE TABLE events (id bigserial PRIMARY KEY, seq integer NOT NULL, message text, "
                + "at timestamptz NOT NULL, entry jsonb NOT NULL, "
                + "CONSTRAINT one_per_seq UNIQUE (seq) DEFERRABLE INITIALLY DEFERRED)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let deadLetters = directory.appendingPathComponent("dead-letter.log")
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  store:
                    type: postgres
                    inputs: [udp_in]
                    url: "\(database)"
                    table: events
                    create_table: false
                    columns: { seq: sequence, message: message, at: $received_at, entry: $entry }
                  dead: { type: file, inputs: [store.rejected], path: "\(deadLetters.path)", format: dead_letter }
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        var datagrams = (1...100).map { seedEntry(sequence: $0, level: "INFO", message: "ok \($0)") }
        datagrams[60] = seedEntry(sequence: 7, level: "INFO", message: "a second seq 7")
        try UDPClient().send(datagrams, port: udpPort, burst: 1000)
        try waitUntil("one dead letter", timeout: 30) { fileLines(deadLetters).count == 1 ? true : nil }
        try waitUntil("99 rows", timeout: 30) { () -> Bool? in
            try TestPostgres.count(database, "SELECT count(*) FROM events") == 99 ? true : nil
        }
        let line = try #require(fileLines(deadLetters).first)
        let letter = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let detail = try #require(letter["detail"] as? String)
        #expect(detail.contains("one_per_seq") && detail.hasSuffix("(SQLSTATE 23505)"), "\(detail)")
        let store = try counters(of: "store", port: httpPort)
        #expect(store["inserted"] as? Int == 99)
        #expect(labelled(store, "rejected", "reason", "rejected_by_database") == 1)
        #expect(try routerd.terminate() == 0)
    }

    @Test func postgres_whenTheServerStopsMidStreamAndComesBack_losesNothingAndAcksOnlyAfterCommit() throws {
        let server = try PrivatePostgres()
        let database = try TestPostgres.freshDatabase(on: server.url)
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                filters:
                  valid: { type: validate_json, inputs: [udp_in] }
                  acked: { type: ack, inputs: [valid] }
                outputs:
                  store:
                    type: postgres
                    inputs: [acked]
                    url: "\(database)"
                    schema: extended
                    reconnect_backoff_max: 500ms
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let client = try UDPClient()
        let rowCount = "SELECT count(*) FROM udp_messages"

        client.send((1...2000).map { seedEntry(sequence: $0, level: "INFO") }, port: udpPort)
        try waitUntil("the first 2000 rows", timeout: 30) { () -> Bool? in
            try TestPostgres.count(database, rowCount) == 2000 ? true : nil
        }
        try server.stop()
        client.send((2001...4000).map { seedEntry(sequence: $0, level: "INFO") }, port: udpPort)
        client.send(seedEntry(sequence: 4001, level: "ERROR", message: "stored after the outage"), port: udpPort)
        let degraded = try waitUntil("/health to say degraded", timeout: 30) { () -> [String: Any]? in
            let body = try httpGet(port: httpPort, "/health").json()
            return body["status"] as? String == "degraded" ? body : nil
        }
        let reasons = degraded["reasons"] as? [String] ?? []
        #expect(reasons.contains { $0.hasPrefix("outputs.store: cannot insert into udp_messages at postgres://") })
        // The ERROR entry is not stored: its ack must wait.
        #expect(client.receive(timeout: 1.5) == nil)
        #expect(try counters(of: "store", port: httpPort)["retries"] as? Int ?? 0 > 0)

        try server.start()
        let ack = try #require(client.receive(timeout: 30), "no ack after the server came back")
        #expect(ack == "{\"ack\":true,\"sequence\":4001,\"status\":\"stored\"}")
        #expect(
            try TestPostgres.count(database, "SELECT count(*) FROM udp_messages WHERE entry->>'level' = 'ERROR'") == 1)
        try waitUntil("all 4001 entries", timeout: 30) { () -> Bool? in
            try TestPostgres.count(database, "SELECT count(DISTINCT (entry->>'sequence')::int) FROM udp_messages")
                == 4001 ? true : nil
        }
        let store = try counters(of: "store", port: httpPort)
        // At-least-once: an INSERT cut off by the shutdown may have committed and been sent again.
        let unknown = store["unknown_outcome"] as? Int ?? 0
        let rows = try TestPostgres.count(database, rowCount)
        #expect(rows >= 4001 && rows <= 4001 + unknown)
        #expect(store["retries"] as? Int ?? 0 > 0)
        #expect(store["reconnects"] as? Int ?? 0 >= 1)
        #expect(droppedTotal(store) == 0)
        try waitUntil("/health to say ok again", timeout: 10) { () -> Bool? in
            try httpGet(port: httpPort, "/health").json()["status"] as? String == "ok" ? true : nil
        }
        #expect(try routerd.terminate() == 0)
    }

    @Test func postgres_withAWrongPasswordOrNoServer_namesStageAndMaskedURLAndHealthIsDegraded() throws {
        let database = try TestPostgres.freshDatabase()
        let wrongPassword = "not-the-password-\(UUID().uuidString.prefix(8))"
        let wrongURL = database.replacingOccurrences(of: ":routerd-test@", with: ":${STORE_PASSWORD}@")
        // A port nothing listens on: bound, then closed.
        let closedPort = try freeTCPPort()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  locked_out: { type: postgres, inputs: [udp_in], url: "\(wrongURL)" }
                  nowhere:
                    type: postgres
                    inputs: [udp_in]
                    url: "postgres://routerd:${STORE_PASSWORD}@127.0.0.1:\(closedPort)/logs"
                    connect_timeout: 1s
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory, environment: ["STORE_PASSWORD": wrongPassword])
        let httpPort = try routerd.listeningPort(stage: "stats")
        let failures = try routerd.waitForLog("database unavailable; holding entries and retrying", count: 2)
        let byStage = Dictionary(
            failures.map { (($0["stage"] as? String) ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        let maskedWrong = database.replacingOccurrences(of: ":routerd-test@", with: ":***@")
        let lockedOut = try #require(byStage["locked_out"])
        #expect(lockedOut["url"] as? String == maskedWrong)
        #expect(
            lockedOut["error"] as? String
                == "password authentication failed for user \"routerd\" (SQLSTATE 28P01)")
        let nowhere = try #require(byStage["nowhere"])
        #expect(nowhere["url"] as? String == "postgres://routerd:***@127.0.0.1:\(closedPort)/logs")
        #expect(nowhere["error"] as? String == "cannot connect: Connection refused")

        let health = try waitUntil("/health to name both outputs") { () -> [String: Any]? in
            let body = try httpGet(port: httpPort, "/health").json()
            return (body["reasons"] as? [String])?.count == 2 ? body : nil
        }
        #expect(health["status"] as? String == "degraded")
        let reasons = try #require(health["reasons"] as? [String])
        #expect(
            reasons.contains {
                $0 == "outputs.locked_out: cannot insert into udp_messages at \(maskedWrong): password "
                    + "authentication failed for user \"routerd\" (SQLSTATE 28P01)"
            })
        #expect(
            reasons.contains {
                $0.hasPrefix(
                    "outputs.nowhere: cannot insert into udp_messages at postgres://routerd:***@127.0.0.1:\(closedPort)/logs: cannot connect"
                )
            })
        let stats = try httpGet(port: httpPort, "/stats").body
        #expect(try routerd.terminate() == 0)
        for text in [routerd.logLines.joined(separator: "\n"), stats, reasons.joined()] {
            #expect(!text.contains(wrongPassword), "the password leaked")
        }
    }

    @Test func postgres_whenTheDatabaseIsDownAtShutdown_givesUpAfterDrainTimeoutAndCountsTheLoss() throws {
        let closedPort = try freeTCPPort()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  store:
                    type: postgres
                    inputs: [udp_in]
                    url: "postgres://routerd:pw@127.0.0.1:\(closedPort)/logs"
                    drain_timeout: 1s
                    reconnect_backoff_max: 200ms
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        try UDPClient().send((1...25).map { seedEntry(sequence: $0, level: "INFO") }, port: udpPort)
        try waitUntil("the store to hold 25 entries") { () -> Bool? in
            try counters(of: "store", port: httpPort)["events_in"] as? Int == 25 ? true : nil
        }
        let started = Date()
        #expect(try routerd.terminate(timeout: 20) == 3)
        #expect(Date().timeIntervalSince(started) < 10)
        let lost = try routerd.waitForLog("stopped with entries that could not be inserted")
        #expect(lost.first?["events_lost"] as? String == "25")
        #expect(lost.first?["stage"] as? String == "store")
        #expect(!routerd.logs("giving up on the database: shutting down and it is still unavailable").isEmpty)
    }
}
