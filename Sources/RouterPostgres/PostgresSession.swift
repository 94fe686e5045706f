import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Why an operation on the database failed, sorted by what the output does next.
struct PostgresFailure: Error, CustomStringConvertible {
    enum Kind {
        /// The database refused the rows' values (SQLSTATE class 22 or 23): find the bad rows, keep the rest.
        case rows
        /// The server refused the statement itself (no table, no permission): the session must be set up again.
        case statement
        /// The connection is gone or was never made: connect again.
        case connection
    }

    var kind: Kind
    /// The database's words (`invalid input syntax for type integer: "abc" (SQLSTATE 22P02)`) or the network's.
    var message: String
    /// The connection was lost while a statement was in flight: it may have committed or not.
    var outcomeUnknown = false

    var description: String { message }
}

/// One connection to the database, set up to insert into the table.
///
/// Every call blocks the calling thread (the output's own) until the database answers or `deadline` (monotonic
/// nanoseconds) passes; past the deadline the connection is closed, which ends the work in flight.
final class PostgresSession {
    private let connection: PostgresConnection
    private let executor: EventLoopTaskExecutor
    private let quietLogger: Logger
    /// What to insert into the table as it is now; nil until ``setUp(table:createTable:deadline:)``.
    private(set) var plan: InsertPlan?

    private init(connection: PostgresConnection, executor: EventLoopTaskExecutor, logger: Logger) {
        self.connection = connection
        self.executor = executor
        self.quietLogger = logger
    }

    /// Whether the connection has closed (the server went away, or ``close()``).
    var isClosed: Bool { connection.isClosed }

    /// Connects, giving up at `deadline` (and after `connectTimeout` for the TCP connect itself).
    static func connect(
        to url: PostgresURL, tls: NIOSSLContext?, tlsFiles: TLSClientOptions.Files, connectTimeout: Duration,
        deadline: Int64
    ) throws(PostgresFailure) -> PostgresSession {
        // postgres-nio's own log lines are of no use to a routerd user and could name the server's parameters.
        let logger = Logger(label: "routerd.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: tls.map { .require($0) } ?? .disable)
        let remaining = max(1_000_000, deadline - monotonicNanos())
        configuration.options.connectTimeout = .nanoseconds(min(connectTimeout.nanoseconds, remaining))
        configuration.options.additionalStartupParameters = [("application_name", "routerd")]
        let executor = EventLoopTaskExecutor(PostgresConnection.defaultEventLoopGroup.next())
        do {
            let connection = try BlockingBridge.run(
                on: executor, until: deadline,
                // Made after the caller stopped waiting: nobody will use it (close it, keeping it alive until closed).
                discard: { connection in connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
            ) { [configuration] in
                try await PostgresConnection.connect(
                    on: executor.eventLoop, configuration: configuration, id: 1, logger: logger)
            }
            return PostgresSession(connection: connection, executor: executor, logger: logger)
        } catch is BlockingBridge.TimedOut {
            throw PostgresFailure(kind: .connection, message: "no connection within the time allowed")
        } catch {
            var failure = PostgresSession.classify(error)
            // NIOSSL says only that verification failed; the reason (expired, untrusted, another name) is what a
            // user acts on. A server that answered (with an error of its own) got past TLS: nothing to find there.
            if tls != nil, (error as? PSQLError)?.code != .server,
                let reason = PostgresTLS.diagnose(url: url, files: tlsFiles, timeout: connectTimeout)
            {
                failure.message = reason
            }
            throw failure
        }
    }

    /// Creates the table when asked and it is missing, reads its columns and plans the INSERT.
    func setUp(table: PostgresTable, createTable: Bool, deadline: Int64) throws(PostgresFailure) {
        plan = nil
        if createTable {
            do {
                try run(PostgresQuery(unsafeSQL: table.createStatement), deadline: deadline)
            } catch let failure where failure.kind != .connection {
                // Two routers creating the same table at once: one wins, the other sees a duplicate.
                let raced = failure.message.contains("SQLSTATE 23505") || failure.message.contains("SQLSTATE 42P07")
                if !raced { throw failure }
            }
        }
        var binds = PostgresBindings()
        binds.append(table.quotedName)
        let columns: [TableColumn]
        do {
            columns = try BlockingBridge.run(on: executor, until: deadline) { [connection, quietLogger, binds] in
                let rows = try await connection.query(
                    PostgresQuery(unsafeSQL: PostgresTable.columnsQuery, binds: binds), logger: quietLogger)
                var columns: [TableColumn] = []
                for try await (name, type, required) in rows.decode((String, String, Bool).self) {
                    columns.append(TableColumn(name: name, type: type, required: required))
                }
                return columns
            }
        } catch {
            throw timedOutOrClassified(error)
        }
        guard !columns.isEmpty else {
            throw PostgresFailure(
                kind: .statement,
                message: "table \(table.displayName) does not exist"
                    + (createTable ? "" : " (create_table is false: create it, or set create_table: true)"))
        }
        do {
            plan = try table.plan(for: columns)
        } catch {
            throw PostgresFailure(kind: .statement, message: error.description)
        }
    }

    /// Runs the plan's INSERT with `binds` (``InsertPlan``) inside BEGIN ... COMMIT, committed when it returns.
    ///
    /// Not autocommit: there the server commits after answering the INSERT, and postgres-nio reports the INSERT as
    /// done before a failing commit (a deferred constraint, a serialization failure) says otherwise. COMMIT's own
    /// answer is the one that counts.
    func insert(_ binds: PostgresBindings, deadline: Int64) throws(PostgresFailure) {
        guard let plan else {
            throw PostgresFailure(kind: .statement, message: "the session is not set up")
        }
        let insert = PostgresQuery(unsafeSQL: plan.statement, binds: binds)
        do {
            try BlockingBridge.run(on: executor, until: deadline) { [connection, quietLogger] in
                try await connection.query("BEGIN", logger: quietLogger)
                do {
                    try await connection.query(insert, logger: quietLogger)
                    try await connection.query("COMMIT", logger: quietLogger)
                } catch {
                    // After a refused INSERT the transaction is aborted; after a refused COMMIT it is already over
                    // (and ROLLBACK only warns). Either way the session is clean for the next batch.
                    if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: quietLogger) }
                    throw error
                }
                return ()
            }
        } catch {
            var failure = timedOutOrClassified(error)
            if failure.kind == .connection { failure.outcomeUnknown = true }
            throw failure
        }
    }

    /// Forgets the table's shape, so that the next use reads it again (after the table changed or went away).
    func invalidateSetUp() {
        plan = nil
    }

    /// Closes the connection without waiting.
    func close() {
        // postgres-nio asserts that a connection is closed before it is freed: keep it alive until it is.
        let connection = connection
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    private func run(_ query: PostgresQuery, deadline: Int64) throws(PostgresFailure) {
        do {
            try BlockingBridge.run(on: executor, until: deadline) { [connection, quietLogger] in
                try await connection.query(query, logger: quietLogger)
                return ()
            }
        } catch {
            throw timedOutOrClassified(error)
        }
    }

    private func timedOutOrClassified(_ error: any Error) -> PostgresFailure {
        if error is BlockingBridge.TimedOut {
            close()
            return PostgresFailure(kind: .connection, message: "the database did not answer within the time allowed")
        }
        let failure = PostgresSession.classify(error)
        if failure.kind != .connection && connection.isClosed {
            return PostgresFailure(kind: .connection, message: failure.message)
        }
        return failure
    }

    /// Sorts an error from postgres-nio and words it without the query or the password.
    static func classify(_ error: any Error) -> PostgresFailure {
        guard let error = error as? PSQLError else {
            return PostgresFailure(kind: .connection, message: "\(error)")
        }
        if error.code == .server, let info = error.serverInfo {
            let state = info[.sqlState] ?? "?????"
            var message = info[.message] ?? "error"
            if let detail = info[.detail] { message += ": " + detail }
            message += " (SQLSTATE \(state))"
            let kind: PostgresFailure.Kind
            switch state.prefix(2) {
            case "22", "23": kind = .rows
            case "08", "57": kind = .connection  // connection exception, operator intervention (server shutting down)
            default: kind = state == "54000" ? .rows : .statement
            }
            return PostgresFailure(kind: kind, message: message)
        }
        var message: String
        switch error.code {
        case .serverClosedConnection: message = "the server closed the connection"
        case .clientClosedConnection: message = "the connection was closed"
        case .connectionError: message = "cannot connect"
        case .uncleanShutdown: message = "the connection ended uncleanly"
        default: message = "\(error.code)"
        }
        if let underlying = error.underlying { message += ": " + describe(underlying) }
        return PostgresFailure(kind: .connection, message: message)
    }

    /// NIO's connection errors in a person's words (`Connection refused`), not as nested Swift values.
    private static func describe(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError {
            if let failure = connection.connectionErrors.first { return describe(failure.error) }
            if connection.dnsAError != nil || connection.dnsAAAAError != nil {
                return "cannot resolve host '\(connection.host)'"
            }
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if case ChannelError.connectTimeout(let amount) = error {
            return "no answer within \(amount.nanoseconds / 1_000_000)ms"
        }
        return "\(error)"
    }
}

extension RowValues {
    /// The bind parameters of the plan's INSERT, in the order ``InsertPlan`` numbers them.
    func bindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: fields.count + nulls.count + 2)
        for column in fields { binds.append(column) }
        for mask in nulls { binds.append(mask) }
        if plan.usesEntry { binds.append(entries) }
        if plan.usesReceivedAt { binds.append(micros) }
        return binds
    }
}
