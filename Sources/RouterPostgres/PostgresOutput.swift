import Logging
public import RouterCore

/// `postgres`: inserts each batch into a PostgreSQL table with one statement; rows the database refuses go to the
/// `rejected` port with the database's message while the rest commit.
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
    static let rejectReasons = ["rejected_by_database", "not_utf8", "not_json", "not_object"]

    /// The `postgres` declaration.
    public static let declaration = StageDeclaration(
        type: "postgres",
        summary: "Inserts entries into a PostgreSQL table, one statement per batch; refused rows go to `rejected`.",
        options: [
            url,
            table,
            columns,
            createTable,
            batchMaxEvents,
            SharedOptions.connectTimeout,
            writeTimeout,
        ],
        ports: [
            PortDeclaration(
                "rejected",
                "Entries the database refused (a value its column cannot take, a constraint) with the database's "
                    + "message as their detail, and entries that are not JSON objects; the rest of their batch "
                    + "commits. Read it with a `file` output in `format: dead_letter`.")
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
        }
    )

    static let url = StageOption<String>(
        OptionDeclaration(
            "url", .string, .required,
            "postgres://user:password@host:5432/database. Take the password from the environment "
                + "(`postgres://routerd:${PGPASSWORD}@db/logs`); it is shown as *** in every log line, error and "
                + "/health. TLS is not supported yet (only `?sslmode=disable`)."))

    static let table = StageOption<String>(
        OptionDeclaration(
            "table", .string, .defaultValue(.string("udp_messages")),
            "Table (or schema.table) to insert into. Names are taken exactly as written (they are quoted), so "
                + "`Logs` is not `logs`."))

    static let columns = StageOption<[String: String]?>(
        OptionDeclaration(
            "columns", .mapping(.string), .optional,
            "Column name to what fills it: a field of the entry (`text`, or `client.id` for a nested one; "
                + "extracted as text and cast to the column's type, NULL when absent), `$entry` (the whole entry "
                + "as jsonb) or `$received_at` (when routerd received it). Unset: the seed's table, client_id, "
                + "text, token and checksum from the fields of the same names, received_at, and entry. A value "
                + "that its column cannot take refuses that row only."))

    static let createTable = StageOption<Bool>(
        OptionDeclaration(
            "create_table", .bool, .defaultValue(.bool(true)),
            "Create the table when it is missing: an `id bigserial` key, then each column (`$entry` jsonb not "
                + "null, `$received_at` timestamptz not null default now(), fields text). False: a missing table "
                + "is an error, retried with backoff until someone creates it."))

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

    init(_ options: StageOptions) throws {
        do {
            url = try PostgresURL(parsing: try options.value(PostgresOutput.url))
        } catch let error as PostgresURLError {
            throw StageError("option 'url' \(error.description)")
        }
        do {
            table = try PostgresTable(
                table: try options.value(PostgresOutput.table), columns: try options.value(PostgresOutput.columns))
        } catch let error as PostgresConfigError {
            throw StageError(error.description)
        }
        createTable = try options.value(PostgresOutput.createTable)
        batchMaxEvents = try options.value(PostgresOutput.batchMaxEvents)
        connectTimeout = try options.value(SharedOptions.connectTimeout)
        writeTimeout = try options.value(PostgresOutput.writeTimeout)
    }
}
