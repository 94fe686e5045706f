/// Where one column's value comes from.
enum ColumnSource: Sendable, Equatable, CustomStringConvertible {
    /// The whole entry (as jsonb, or cast to the column's type).
    case entry
    /// The time routerd received the entry.
    case receivedAt
    /// A field of the entry: top-level (`text`) or nested (`client.id` is `{"client":{"id":..}}`).
    case field([String])

    /// The spellings of the special sources in `columns`.
    static let entryName = "$entry"
    static let receivedAtName = "$received_at"

    /// Reads a `columns` value; nil for a `$name` that is neither `$entry` nor `$received_at`, or an empty path part.
    init?(parsing text: String) {
        switch text {
        case Self.entryName: self = .entry
        case Self.receivedAtName: self = .receivedAt
        default:
            guard !text.hasPrefix("$") else { return nil }
            let path = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !path.contains(where: \.isEmpty) else { return nil }
            self = .field(path)
        }
    }

    var description: String {
        switch self {
        case .entry: Self.entryName
        case .receivedAt: Self.receivedAtName
        case .field(let path): path.joined(separator: ".")
        }
    }
}

/// The table the output inserts into and how each of its columns is filled: the SQL it runs.
struct PostgresTable: Sendable {
    /// `table` or `schema.table`, each part taken exactly as written (it is quoted, so case matters).
    var nameParts: [String]
    /// The mapped columns, in a stable order.
    var columns: [(name: String, source: ColumnSource)]

    /// The seed's table, `udp_messages(id, client_id, text, token, checksum, received_at)` plus the entry as jsonb.
    static let seedColumns: [(name: String, source: ColumnSource)] = [
        ("client_id", .field(["client_id"])), ("text", .field(["text"])), ("token", .field(["token"])),
        ("checksum", .field(["checksum"])), ("received_at", .receivedAt), ("entry", .entry),
    ]

    /// Reads the `table` and `columns` options; the messages name what is wrong.
    init(table: String, columns mapping: [String: String]?) throws(PostgresConfigError) {
        let parts = table.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw PostgresConfigError("'table' must be a table name or schema.table, got '\(table)'")
        }
        for part in parts where part.utf8.count > 63 {
            throw PostgresConfigError("'table': '\(part)' is longer than PostgreSQL's 63-byte names")
        }
        nameParts = parts
        guard let mapping else {
            columns = Self.seedColumns
            return
        }
        guard !mapping.isEmpty else { throw PostgresConfigError("'columns' maps no column") }
        var parsed: [(name: String, source: ColumnSource)] = []
        for (column, sourceText) in mapping.sorted(by: { $0.key < $1.key }) {
            guard !column.isEmpty, column.utf8.count <= 63 else {
                throw PostgresConfigError("'columns': '\(column)' is not a column name (1 to 63 bytes)")
            }
            guard let source = ColumnSource(parsing: sourceText) else {
                throw PostgresConfigError(
                    "'columns': column '\(column)' reads '\(sourceText)', which is neither a field path "
                        + "(name or a.b.c) nor \(ColumnSource.entryName) nor \(ColumnSource.receivedAtName)")
            }
            parsed.append((column, source))
        }
        columns = parsed
    }

    /// The table as SQL: `"schema"."table"`.
    var quotedName: String { nameParts.map(SQL.identifier).joined(separator: ".") }

    /// The table's name as written in the config, for messages.
    var displayName: String { nameParts.joined(separator: ".") }

    /// `CREATE TABLE IF NOT EXISTS`: an `id bigserial` key, then each mapped column: `$entry` jsonb not null,
    /// `$received_at` timestamptz not null default now(), a field text.
    var createStatement: String {
        var definitions: [String] = []
        if !columns.contains(where: { $0.name == "id" }) { definitions.append("id bigserial PRIMARY KEY") }
        for column in columns {
            let type: String
            switch column.source {
            case .entry: type = "jsonb NOT NULL"
            case .receivedAt: type = "timestamptz NOT NULL DEFAULT now()"
            case .field: type = "text"
            }
            definitions.append(SQL.identifier(column.name) + " " + type)
        }
        return "CREATE TABLE IF NOT EXISTS \(quotedName) (" + definitions.joined(separator: ", ") + ")"
    }

    /// Reads the table's column types (`$1`: ``quotedName``); no rows when the table does not exist.
    static let columnTypesQuery =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        + "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"

    /// The one statement that inserts a whole batch: `$1` the entries (text[]), `$2` the receive times (int8[],
    /// microseconds since the Unix epoch). Each entry is parsed as jsonb once; each value is cast to its column's
    /// type (`types`, from ``columnTypesQuery``), so that a row with a value its column cannot take fails as that
    /// row's error. Throws when a mapped column is not in the table.
    func insertStatement(types: [String: String]) throws(PostgresConfigError) -> String {
        var names: [String] = []
        var values: [String] = []
        for column in columns {
            guard let type = types[column.name] else {
                throw PostgresConfigError(
                    "table \(displayName) has no column '\(column.name)' (its columns: "
                        + types.keys.sorted().joined(separator: ", ") + ")")
            }
            names.append(SQL.identifier(column.name))
            let isJSON = type == "jsonb" || type == "json"
            let expression: String
            switch column.source {
            case .entry: expression = "s.e"
            case .receivedAt: expression = "s.r"
            case .field(let path):
                let operand =
                    path.count == 1
                    ? SQL.literal(path[0]) : "ARRAY[" + path.map(SQL.literal).joined(separator: ",") + "]"
                let operation = path.count == 1 ? (isJSON ? "->" : "->>") : (isJSON ? "#>" : "#>>")
                expression = "(s.e \(operation) \(operand))"
            }
            values.append("\(expression)::\(type)")
        }
        // OFFSET 0 keeps the subquery from being folded into the outer one, which would parse the entry once per
        // column instead of once per row.
        return "INSERT INTO \(quotedName) (" + names.joined(separator: ", ") + ") SELECT "
            + values.joined(separator: ", ")
            + " FROM (SELECT u.entry::jsonb AS e, timestamptz 'epoch' + u.micros * interval '1 microsecond' AS r"
            + " FROM unnest($1::text[], $2::int8[]) AS u(entry, micros) OFFSET 0) AS s"
    }
}

/// A mistake in the postgres output's options, or between them and the table.
struct PostgresConfigError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// Quoting for the names and texts the output pastes into SQL (values always travel as bind parameters).
enum SQL {
    /// `"name"`, with `"` doubled.
    static func identifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// `'text'`, with `'` doubled (standard_conforming_strings, on by default since PostgreSQL 9.1).
    static func literal(_ text: String) -> String {
        "'" + text.replacingAll("'", with: "''") + "'"
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var output = ""
        for character in self {
            if character == target { output += replacement } else { output.append(character) }
        }
        return output
    }
}
