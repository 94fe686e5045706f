import RouterPostgres
import Testing

/// What `field` of `entry` becomes in a column of `type`: its text, nil for NULL; a refusal is recorded and nil.
private func cast(_ entry: String, _ field: String = "v", into type: String) -> PostgresRules.CastOutcome {
    PostgresRules.cast(entry, field: field.split(separator: ".").map(String.init), type: type)
}

/// The seed's table as its consumer creates it, as `format_type` and pg_attribute describe it.
private let seedTable: [(name: String, type: String, required: Bool)] = [
    ("id", "integer", false), ("client_id", "integer", false), ("text", "text", false), ("token", "text", false),
    ("checksum", "text", false), ("received_at", "timestamp without time zone", false),
]

@Suite("postgres output: casts to the column types")
struct PostgresCastTests {
    @Test func integerColumns_takeIntegersAndStringsHoldingThem_inRange() {
        #expect(cast(#"{"v":1}"#, into: "integer") == .value("1"))
        #expect(cast(#"{"v":-42}"#, into: "integer") == .value("-42"))
        #expect(cast(#"{"v":"17"}"#, into: "integer") == .value("17"))
        #expect(cast(#"{"v":"+17"}"#, into: "integer") == .value("17"))
        #expect(cast(#"{"v":3.0}"#, into: "integer") == .value("3"))
        #expect(cast(#"{"v":2147483647}"#, into: "integer") == .value("2147483647"))
        #expect(cast(#"{"v":9223372036854775807}"#, into: "bigint") == .value("9223372036854775807"))
        #expect(cast(#"{"v":32767}"#, into: "smallint") == .value("32767"))
        #expect(cast(#"{"v":null}"#, into: "integer") == .value(nil))
        #expect(cast(#"{"other":1}"#, into: "integer") == .value(nil))
    }

    @Test func integerColumns_refuseWhatIsNotAnIntegerInRange_sayingWhy() {
        #expect(cast(#"{"v":"abc"}"#, into: "integer") == .refused(#""abc" is not an integer"#))
        #expect(cast(#"{"v":1.5}"#, into: "integer") == .refused("1.5 is not an integer"))
        #expect(cast(#"{"v":1e3}"#, into: "integer") == .refused("1e3 is not an integer"))
        #expect(
            cast(#"{"v":2147483648}"#, into: "integer")
                == .refused("2147483648 is out of range for -2147483648...2147483647"))
        #expect(cast(#"{"v":32768}"#, into: "smallint") == .refused("32768 is out of range for -32768...32767"))
        #expect(
            cast(#"{"v":"99999999999999999999"}"#, into: "bigint")
                == .refused(#""99999999999999999999" is out of range for -9223372036854775808...9223372036854775807"#)
        )
        #expect(cast(#"{"v":" 1"}"#, into: "integer") == .refused(#"" 1" is not an integer"#))
        #expect(cast(#"{"v":true}"#, into: "integer") == .refused("true is not an integer"))
        #expect(cast(#"{"v":{"a":1}}"#, into: "integer") == .refused("an object is not an integer"))
        #expect(cast(#"{"v":[1]}"#, into: "bigint") == .refused("an array is not an integer"))
    }

    @Test func numericColumns_takeNumbersAndNumericStrings() {
        #expect(cast(#"{"v":1.5}"#, into: "numeric") == .value("1.5"))
        #expect(cast(#"{"v":-2e-3}"#, into: "numeric(10,2)") == .value("-2e-3"))
        #expect(cast(#"{"v":"3.25"}"#, into: "double precision") == .value("3.25"))
        #expect(cast(#"{"v":7}"#, into: "real") == .value("7"))
        #expect(cast(#"{"v":"1.2.3"}"#, into: "numeric") == .refused(#""1.2.3" is not a number"#))
        #expect(cast(#"{"v":false}"#, into: "numeric") == .refused("false is not a number"))
    }

    @Test func textAndJSONColumns_takeAnyValue_objectsAsWritten() {
        #expect(cast(#"{"v":"caf\u00e9 \"q\""}"#, into: "text") == .value("café \"q\""))
        #expect(cast(#"{"v":12}"#, into: "text") == .value("12"))
        #expect(cast(#"{"v":true}"#, into: "character varying(5)") == .value("true"))
        #expect(cast(#"{"v": {"a": [1, "}"]} }"#, into: "text") == .value(#"{"a": [1, "}"]}"#))
        #expect(cast(#"{"v":"a\u0000b"}"#, into: "text") == .refused(#"a string with \u0000 cannot be stored as text"#))
        #expect(cast(#"{"v":[1,{"b":null}]}"#, into: "jsonb") == .value(#"[1,{"b":null}]"#))
        #expect(cast(#"{"v":"s"}"#, into: "json") == .value(#""s""#))
        #expect(cast(#"{"v":null}"#, into: "jsonb") == .value(nil))
        #expect(cast(#"{"v":true}"#, into: "boolean") == .value("true"))
        #expect(cast(#"{"v":"false"}"#, into: "boolean") == .value("false"))
        #expect(cast(#"{"v":1}"#, into: "boolean") == .refused("an integer is not true or false"))
        #expect(
            cast(#"{"v":"2025-01-31T12:00:00Z"}"#, into: "timestamp with time zone") == .value("2025-01-31T12:00:00Z")
        )
        #expect(cast(#"{"v":{}}"#, into: "uuid") == .refused("an object is not a string or a number"))
    }

    @Test func nestedAndEscapedFields_areFound_andTheLastDuplicateWins() {
        #expect(cast(#"{"client":{"id":5,"x":[{"id":6}]}}"#, "client.id", into: "integer") == .value("5"))
        #expect(cast(#"{"client":"flat"}"#, "client.id", into: "integer") == .value(nil))
        #expect(cast(#"{"\u0076":"escaped key"}"#, into: "text") == .value("escaped key"))
        #expect(cast(#"{"v":1,"v":2}"#, into: "integer") == .value("2"))
        #expect(cast(#"{"w":{"v":9},"v":"top"}"#, into: "text") == .value("top"))
    }

    @Test func seedTable_isFilledWithItsColumns_andEntryOnlyWhenTheTableHasIt() throws {
        let plan = try PostgresRules.plan(table: "udp_messages", columns: nil, existing: seedTable)
        #expect(plan.filled == ["client_id", "text", "token", "checksum", "received_at"])
        #expect(plan.skipped.isEmpty)
        #expect(plan.statement.contains("CASE WHEN (u.n0 & 1) = 0 THEN u.c0::integer END"))
        #expect(plan.statement.contains("(timestamp 'epoch' + u.r * interval '1 microsecond')"), "UTC wall time")
        #expect(!plan.statement.contains("\"id\""))

        let extended = seedTable.filter { $0.name != "token" } + [("entry", "jsonb", true)]
        let withEntry = try PostgresRules.plan(table: "udp_messages", columns: nil, existing: extended)
        #expect(withEntry.filled == ["client_id", "text", "checksum", "received_at", "entry"])
        #expect(withEntry.skipped == ["token"])
        #expect(withEntry.statement.contains("u.e::jsonb"))
    }

    @Test func explicitColumns_mustBeInTheTable_andRequiredColumnsMustBeFilled() {
        #expect(throws: (any Error).self) {
            try PostgresRules.plan(table: "udp_messages", columns: ["tag": "app"], existing: seedTable)
        }
        do {
            _ = try PostgresRules.plan(table: "s.t", columns: ["tag": "app"], existing: seedTable)
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("table s.t has no column 'tag'"), "\(error)")
        }
        do {
            _ = try PostgresRules.plan(
                table: "t", columns: nil, existing: seedTable + [("tenant", "text", true)])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("column 'tenant' is NOT NULL without a default"), "\(error)")
        }
        do {
            _ = try PostgresRules.plan(table: "t", columns: ["n": "$received_at"], existing: [("n", "integer", false)])
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("column 'n' is integer, which $received_at cannot fill"), "\(error)")
        }
    }

    @Test func createdTable_isTheSeedsByDefault_andExtendedAddsRoutersExtras() throws {
        #expect(
            try PostgresRules.createStatement(table: "udp_messages", columns: nil, schema: "seed")
                == "CREATE TABLE IF NOT EXISTS \"udp_messages\" (id SERIAL PRIMARY KEY, \"client_id\" INT, "
                + "\"text\" TEXT, \"token\" TEXT, \"checksum\" TEXT, \"received_at\" TIMESTAMP DEFAULT NOW())")
        #expect(
            try PostgresRules.createStatement(table: "logs.Udp", columns: nil, schema: "extended")
                == "CREATE TABLE IF NOT EXISTS \"logs\".\"Udp\" (id SERIAL PRIMARY KEY, \"client_id\" INT, "
                + "\"text\" TEXT, \"token\" TEXT, \"checksum\" TEXT, \"received_at\" TIMESTAMPTZ NOT NULL DEFAULT "
                + "now(), \"entry\" JSONB NOT NULL)")
        #expect(
            try PostgresRules.createStatement(
                table: "t", columns: ["client_id": "client.id", "at": "$received_at", "all": "$entry", "m": "message"],
                schema: "seed")
                == "CREATE TABLE IF NOT EXISTS \"t\" (id SERIAL PRIMARY KEY, \"all\" JSONB NOT NULL, "
                + "\"at\" TIMESTAMP DEFAULT NOW(), \"client_id\" INT, \"m\" TEXT)")
    }
}
