import Logging
import NIOSSL
public import RouterCore

/// `postgres`: inserts each batch into a PostgreSQL table with one statement; rows whose values their columns cannot
/// take, and rows the database refuses, go to the `rejected` port with the reason while the rest commit.
///
/// At connect (and at every reconnect) the output reads the table's columns and types, fills those it knows and
/// leaves the others (an `id SERIAL`, a `DEFAULT NOW()`) to the database; each value is cast in Swift to its
/// column's type (``ColumnCast``) before the batch is sent.
///
/// Entries count as written (``Batch/settle(_:)``, so an `ack` or an `amqp` input upstream answers) only once
/// their INSERT has committed. While the database is away the output keeps the batch it holds, reconnects with
/// capped exponential backoff and jitter, and takes nothing more: the queue in front of it fills, and its
/// `when_full` policy decides (block the intake, or drop and count).
///
/// At-least-once: when the connection is lost while an INSERT is in flight, the output cannot know whether it
/// committed; it inserts those rows again (counted as `unknown_outcome`), so they may be stored twice.
public final class PostgresOutput: OutputStage {
    /// Why an entry went to `rejected`.
    static let rejectReasons = ["rejected_by_database", "not_utf8", "not_json", "not_object", "bad_value"]

    /// The `postgres` declaration.
    public static let declaration = StageDeclaration(
        type: "postgres",
        summary: "Inserts entries into a PostgreSQL table, one statement per batch; refused rows go to `rejected`.",
        options: [
            url,
            table,
            columns,
            createTable,
            schema,
            batchMaxEvents,
            SharedOptions.connectTimeout,
            writeTimeout,
        ] + TLSClientOptions.all,
        ports: [
            PortDeclaration(
                "rejected",
                "Entries with a value their column cannot take (`bad_value`: `\"abc\"` or 1.5 into an integer "
                    + "column, a detail naming the column), entries the database refused (a constraint, with the "
                    + "database's message as their detail), and entries that are not JSON objects; the rest of "
                    + "their batch commits. Read it with a `file` output in `format: dead_letter`.")
        ],
        counters: [
            CounterDeclaration("inserted", "Rows committed (as events_out{port=\"default\"})."),
            CounterDeclaration(
                "rejected", label: "reason", values: rejectReasons, "Entries sent to the rejected port, by reason."),
            CounterDeclaration(
                "insert_statements",
                "INSERT statements sent: one per batch, more while finding the rows the database refused."),
            CounterDeclaration(
                "retries", "Attempts that failed (connection, missing table) and are retried after a backoff."),
            CounterDeclaration("reconnects", "Connections made after the first one."),
            CounterDeclaration(
                "unknown_outcome",
                "Rows whose INSERT was in flight when the connection was lost: inserted again, so possibly twice."),
        ],
        example: StageExample(
            """
            url: "${POSTGRES_URL}"
            table: routerd_example
            """, needs: ["POSTGRES_URL"]),
        check: { options in
            var problems: [String] = []
            if let url = try? options.value(PostgresOutput.url) {
                do throws(PostgresURLError) {
                    _ = try PostgresURL(parsing: url)
                } catch {
                    problems.append("option 'url' \(error.description)")
                }
            }
            if let table = try? options.value(PostgresOutput.table) {
                do throws(PostgresConfigError) {
                    _ = try PostgresTable(table: table, columns: (try? options.value(PostgresOutput.columns)) ?? nil)
                } catch {
                    problems.append(error.description)
                }
            }
            return problems
        },
        validate: { options in
            guard let text = try? options.value(PostgresOutput.url), let url = try? PostgresURL(parsing: text) else {
                return []
            }
            return TLSClientOptions.problems(
                options, tlsInUse: url.sslMode != .disable,
                plainReason: "the url has no sslmode (plain TCP): add ?sslmode=verify-full (or require, verify-ca)")
        }
    )

    static let url = StageOption<String>(
        OptionDeclaration(
            "url", .string, .required,
            "postgres://user:password@host:5432/database. Take the password from the environment "
                + "(`postgres://routerd:${PGPASSWORD}@db/logs`); it is shown as *** in every log line, error and "
                + "/health. TLS: `?sslmode=verify-full` (the server's certificate checked against `tls_ca_file`, or the "
                + "system's store, and for the URL's host), `verify-ca` (the chain, not the name) or `require` "
                + "(encrypted; the chain checked only when `tls_ca_file` is set, as libpq does). None of them falls "
                + "back to plain text; `allow` and `prefer`, which would, are refused. Default: `disable`."))

    static let table = StageOption<String>(
        OptionDeclaration(
            "table", .string, .defaultValue(.string("udp_messages")),
            "Table (or schema.table) to insert into. Names are taken exactly as written (they are quoted), so "
                + "`Logs` is not `logs`."))

    static let columns = StageOption<[String: String]?>(
        OptionDeclaration(
            "columns", .mapping(.string), .optional,
            "Column name to what fills it: a field of the entry (`text`, or `client.id` for a nested one; cast "
                + "to the column's type, NULL when absent or null), `$entry` (the whole entry, into json, jsonb or "
                + "text) or `$received_at` (when routerd received it: timestamptz, timestamp as UTC wall time, "
                + "date, or text in ISO 8601 UTC). Each mapped column must be in the table. Unset: the seed's "
                + "columns client_id, text, token and checksum from the fields of the same names and "
                + "received_at, each where the table has it (a missing one is named once in the log at connect), "
                + "and `entry` (the whole entry) if the table has it. Casts: integer columns take a JSON integer "
                + "or a string holding one, in range (not 1.5, not \"abc\"); numeric, real and double precision "
                + "a number or a string holding one; boolean true or false; json and jsonb any value; text any "
                + "value (an object as written). A value its column cannot take sends that row to `rejected` "
                + "(bad_value) and the rest of the batch is stored. Columns not filled are left to their "
                + "defaults; a NOT NULL column without a default must be mapped."))

    static let createTable = StageOption<Bool>(
        OptionDeclaration(
            "create_table", .bool, .defaultValue(.bool(true)),
            "Create the table when it is missing, as `schema` says. False: a missing table is an error, retried "
                + "with backoff until someone creates it. An existing table is never changed."))

    static let schema = StageOption<String>(
        OptionDeclaration(
            "schema", .oneOf(TableSchema.allCases.map(\.rawValue)), .defaultValue(.string(TableSchema.seed.rawValue)),
            "The table `create_table` makes. `seed`: exactly the data-diode seed's, `id SERIAL PRIMARY KEY, "
                + "client_id INT, text TEXT, token TEXT, checksum TEXT, received_at TIMESTAMP DEFAULT NOW()` "
                + "(received_at holds routerd's receive time as UTC wall time), so the seed's own queries work on "
                + "it. `extended`: the same with routerd's extras, `received_at TIMESTAMPTZ NOT NULL DEFAULT "
                + "now()` and the whole entry in `entry JSONB NOT NULL`. With `columns`, the table has an `id "
                + "SERIAL` key and the mapped columns: a seed column's name gets the seed's type, `$entry` "
                + "JSONB, `$received_at` the schema's received_at type, other fields TEXT."))

    static let batchMaxEvents = StageOption<Int>(
        OptionDeclaration(
            "batch_max_events", .integer(1...100_000), .defaultValue(.integer(1000)),
            "Most entries inserted by one statement (one round trip). Larger means fewer round trips; a refused "
                + "row costs about 2*log2(this) extra statements to find."))

    static let writeTimeout = StageOption<Duration>(
        OptionDeclaration(
            "write_timeout", .duration(.milliseconds(100)...(.seconds(3600))),
            .defaultValue(.duration(.seconds(30))),
            "Longest an INSERT may take; past it the connection is closed and the rows are inserted again, so "
                + "they may be stored twice (counted as unknown_outcome)."))

    private let context: StageContext
    private let settings: PostgresSettings

    /// Reads the options; connects only when it runs, so that a database that is down does not stop routerd.
    public init(context: StageContext) throws {
        self.context = context
        settings = try PostgresSettings(context.options)
    }

    /// Inserts up to `batch_max_events` rows per statement; while the database is away, entries wait in the queue.
    public var traits: OutputTraits {
        // Whether the connect, the connection or a statement failed, users see one outage of the database.
        let unavailable: Logger.Message = "database unavailable; holding entries and retrying"
        let available: Logger.Message = "database available again"
        return OutputTraits(
            maxGroupEvents: settings.batchMaxEvents,
            wording: OutageWording(
                cannotOpen: unavailable, lost: unavailable, refused: unavailable, reopened: available,
                accepted: available,
                givingUp: "giving up on the database: shutting down and it is still unavailable",
                stoppedWithLosses: "stopped with entries that could not be inserted",
                unavailableReason: "database_unavailable"))
    }

    /// The writer, on the output's thread.
    public func makeWriter() -> some OutputWriter { PostgresWriter(context: context, settings: settings) }
}

/// The options, read and checked once.
struct PostgresSettings: Sendable {
    var url: PostgresURL
    var table: PostgresTable
    var createTable: Bool
    var batchMaxEvents: Int
    var connectTimeout: Duration
    var writeTimeout: Duration
    /// The TLS files (for the diagnosis of a failed handshake) and the context made from them once, at start.
    var tlsFiles: TLSClientOptions.Files
    var tlsContext: NIOSSLContext?

    init(_ options: StageOptions) throws {
        do {
            url = try PostgresURL(parsing: try options.value(PostgresOutput.url))
        } catch let error as PostgresURLError {
            throw StageError("option 'url' \(error.description)")
        }
        do {
            table = try PostgresTable(
                table: try options.value(PostgresOutput.table), columns: try options.value(PostgresOutput.columns),
                schema: TableSchema(rawValue: try options.value(PostgresOutput.schema)) ?? .seed)
        } catch let error as PostgresConfigError {
            throw StageError(error.description)
        }
        createTable = try options.value(PostgresOutput.createTable)
        batchMaxEvents = try options.value(PostgresOutput.batchMaxEvents)
        connectTimeout = try options.value(SharedOptions.connectTimeout)
        writeTimeout = try options.value(PostgresOutput.writeTimeout)
        tlsFiles = try TLSClientOptions.files(options)
        tlsContext = try PostgresTLS.context(mode: url.sslMode, files: tlsFiles)
    }
}
