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

/// The table `create_table` makes: the seed's, or the seed's with routerd's extras.
enum TableSchema: String, Sendable, CaseIterable {
    /// Exactly the data-diode seed's table: `id SERIAL PRIMARY KEY, client_id INT, text TEXT, token TEXT,
    /// checksum TEXT, received_at TIMESTAMP DEFAULT NOW()` (received_at in UTC wall time).
    case seed
    /// The seed's, with `received_at TIMESTAMPTZ NOT NULL DEFAULT now()` and the whole entry in `entry JSONB`.
    case extended
}

/// One column of the table as the database describes it.
struct TableColumn: Sendable, Equatable {
    var name: String
    /// As `format_type` writes it: `integer`, `character varying(20)`, `timestamp without time zone`.
    var type: String
    /// NOT NULL with no default, not an identity column: an INSERT that leaves it out fails every row.
    var required: Bool
}

/// The table the output inserts into and how each of its columns is filled: the SQL it runs.
struct PostgresTable: Sendable {
    /// `table` or `schema.table`, each part taken exactly as written (it is quoted, so case matters).
    var nameParts: [String]
    /// The mapped columns, in a stable order.
    var columns: [(name: String, source: ColumnSource)]
    /// Whether `columns` was set: then every mapped column must be in the table. Unset, the seed's columns are
    /// filled where the table has them.
    var explicit: Bool
    /// What `create_table` makes.
    var schema: TableSchema

    /// The seed's columns, filled from the fields of the same names (`received_at`: when routerd received it).
    static let seedColumns: [(name: String, source: ColumnSource)] = [
        ("client_id", .field(["client_id"])), ("text", .field(["text"])), ("token", .field(["token"])),
        ("checksum", .field(["checksum"])), ("received_at", .receivedAt),
    ]

    /// routerd's own column: the whole entry, filled (without `columns`) only when the table has it.
    static let entryColumn: (name: String, source: ColumnSource) = ("entry", .entry)

    /// Reads the `table` and `columns` options; the messages name what is wrong.
    init(table: String, columns mapping: [String: String]?, schema: TableSchema = .seed) throws(PostgresConfigError) {
        let parts = table.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw PostgresConfigError("'table' must be a table name or schema.table, got '\(table)'")
        }
        for part in parts where part.utf8.count > 63 {
            throw PostgresConfigError("'table': '\(part)' is longer than PostgreSQL's 63-byte names")
        }
        nameParts = parts
        self.schema = schema
        guard let mapping else {
            columns = Self.seedColumns + [Self.entryColumn]
            explicit = false
            return
        }
        explicit = true
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

    /// `CREATE TABLE IF NOT EXISTS`. Without `columns`: the seed's table (``TableSchema/seed``), or with
    /// `schema: extended` received_at as timestamptz and the entry as jsonb. With `columns`: `id SERIAL PRIMARY KEY`
    /// (unless mapped), then each mapped column: a seed column's name gets the seed's type, `$entry` JSONB NOT
    /// NULL, `$received_at` the schema's received_at type, any other field TEXT.
    var createStatement: String {
        var definitions: [String] = []
        if !columns.contains(where: { $0.name == "id" }) { definitions.append("id SERIAL PRIMARY KEY") }
        let receivedAtType =
            schema == .seed ? "TIMESTAMP DEFAULT NOW()" : "TIMESTAMPTZ NOT NULL DEFAULT now()"
        var created = columns
        if !explicit && schema == .seed { created.removeAll { $0.name == Self.entryColumn.name } }
        for column in created {
            let type: String
            switch (column.name, column.source) {
            case ("client_id", _): type = "INT"
            case ("text", _), ("token", _), ("checksum", _): type = "TEXT"
            case ("received_at", _), (_, .receivedAt): type = receivedAtType
            case (_, .entry): type = "JSONB NOT NULL"
            case (_, .field): type = "TEXT"
            }
            definitions.append(SQL.identifier(column.name) + " " + type)
        }
        return "CREATE TABLE IF NOT EXISTS \(quotedName) (" + definitions.joined(separator: ", ") + ")"
    }

    /// Reads the table's columns (`$1`: ``quotedName``): name, type, whether an INSERT must fill it. No rows when
    /// the table does not exist.
    static let columnsQuery =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        + "(a.attnotnull AND NOT a.atthasdef AND a.attidentity = '') FROM pg_attribute a "
        + "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"

    /// What to insert into a table of these columns: the mapped columns it has, each with its cast. Throws when an
    /// explicitly mapped column is missing, a special source cannot fill its column's type, or a required column
    /// is left out.
    func plan(for table: [TableColumn]) throws(PostgresConfigError) -> InsertPlan {
        var byName: [String: TableColumn] = [:]
        for column in table { byName[column.name] = column }
        var planned: [InsertPlan.Column] = []
        var skipped: [String] = []
        for column in columns {
            guard let found = byName[column.name] else {
                if explicit {
                    throw PostgresConfigError(
                        "table \(displayName) has no column '\(column.name)' (its columns: "
                            + table.map(\.name).sorted().joined(separator: ", ") + ")")
                }
                if column.name != Self.entryColumn.name { skipped.append(column.name) }
                continue
            }
            let cast = ColumnCast(type: found.type)
            switch column.source {
            case .entry:
                guard cast == .json || cast == .text else {
                    throw PostgresConfigError(
                        "table \(displayName): column '\(column.name)' is \(found.type), which "
                            + "\(ColumnSource.entryName) cannot fill (it needs json, jsonb or text)")
                }
            case .receivedAt:
                guard ReceivedAtKind(type: found.type) != nil else {
                    throw PostgresConfigError(
                        "table \(displayName): column '\(column.name)' is \(found.type), which "
                            + "\(ColumnSource.receivedAtName) cannot fill (it needs timestamp, timestamptz, date or "
                            + "text)")
                }
            case .field: break
            }
            planned.append(InsertPlan.Column(name: column.name, source: column.source, type: found.type, cast: cast))
        }
        let filled = Set(planned.map(\.name))
        if let left = table.first(where: { $0.required && !filled.contains($0.name) }) {
            throw PostgresConfigError(
                "table \(displayName): column '\(left.name)' is NOT NULL without a default and routerd does not fill "
                    + "it (map it in 'columns')")
        }
        guard !planned.isEmpty else {
            throw PostgresConfigError(
                "table \(displayName) has none of the columns routerd fills ("
                    + columns.map(\.name).joined(separator: ", ") + "): map some in 'columns'")
        }
        return InsertPlan(table: self, columns: planned, skipped: skipped)
    }
}

/// How a `$received_at` column is filled.
enum ReceivedAtKind {
    /// timestamptz: the instant.
    case instant
    /// timestamp without time zone: the UTC wall time.
    case utcWallTime
    /// date: the UTC date.
    case utcDate
    /// text: ISO 8601 in UTC (`2025-01-31T12:00:00.123456Z`).
    case text

    init?(type: String) {
        if type.hasPrefix("timestamp") {
            self = type.hasSuffix("with time zone") && !type.hasSuffix("without time zone") ? .instant : .utcWallTime
        } else if type == "date" {
            self = .utcDate
        } else if ColumnCast(type: type) == .text {
            self = .text
        } else {
            return nil
        }
    }
}

/// The INSERT for one table shape, and which columns its bind parameters fill.
///
/// `$1`...`$k`: one text[] per field column (its value in each row, already converted by ``ColumnCast``);
/// then one int8[] of null flags per 63 field columns (bit `i % 63` set: column `i` is NULL in that row); then the
/// entries (text[]) when a column is `$entry`, then the receive times (int8[], microseconds since the Unix epoch)
/// when a column is `$received_at`. Values are cast in Swift first, so the casts in SQL do not fail.
struct InsertPlan: Sendable {
    struct Column: Sendable {
        var name: String
        var source: ColumnSource
        var type: String
        var cast: ColumnCast
    }

    static let flagsPerMask = 63

    var columns: [Column]
    /// Seed columns the table does not have (without `columns`), left out.
    var skipped: [String]
    /// The field columns, in bind order: index into ``columns`` and the field's path.
    var fields: [(column: Int, path: [String])]
    var usesEntry: Bool
    var usesReceivedAt: Bool
    var statement: String

    init(table: PostgresTable, columns: [Column], skipped: [String]) {
        self.columns = columns
        self.skipped = skipped
        var fields: [(column: Int, path: [String])] = []
        for (index, column) in columns.enumerated() {
            if case .field(let path) = column.source { fields.append((index, path)) }
        }
        self.fields = fields
        usesEntry = columns.contains { $0.source == .entry }
        usesReceivedAt = columns.contains { $0.source == .receivedAt }
        let masks = (fields.count + Self.flagsPerMask - 1) / Self.flagsPerMask
        var unnestArguments: [String] = []
        var aliases: [String] = []
        for index in fields.indices {
            unnestArguments.append("$\(unnestArguments.count + 1)::text[]")
            aliases.append("c\(index)")
        }
        for mask in 0..<masks {
            unnestArguments.append("$\(unnestArguments.count + 1)::int8[]")
            aliases.append("n\(mask)")
        }
        if usesEntry {
            unnestArguments.append("$\(unnestArguments.count + 1)::text[]")
            aliases.append("e")
        }
        if usesReceivedAt {
            unnestArguments.append("$\(unnestArguments.count + 1)::int8[]")
            aliases.append("r")
        }
        var values: [String] = []
        var fieldIndex = 0
        for column in columns {
            switch column.source {
            case .field:
                let mask = "u.n\(fieldIndex / Self.flagsPerMask)"
                let bit = Int64(1) << Int64(fieldIndex % Self.flagsPerMask)
                let value = "u.c\(fieldIndex)" + (column.cast == .text ? "" : "::" + column.type)
                values.append("CASE WHEN (\(mask) & \(bit)) = 0 THEN \(value) END")
                fieldIndex += 1
            case .entry:
                values.append(column.cast == .text ? "u.e" : "u.e::" + column.type)
            case .receivedAt:
                let utc = "(timestamp 'epoch' + u.r * interval '1 microsecond')"
                switch ReceivedAtKind(type: column.type) ?? .instant {
                case .instant: values.append("timestamptz 'epoch' + u.r * interval '1 microsecond'")
                case .utcWallTime: values.append(utc)
                case .utcDate: values.append(utc + "::date")
                case .text: values.append("to_char(\(utc), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
                }
            }
        }
        statement =
            "INSERT INTO \(table.quotedName) (" + columns.map { SQL.identifier($0.name) }.joined(separator: ", ")
            + ") SELECT " + values.joined(separator: ", ") + " FROM unnest("
            + unnestArguments.joined(separator: ", ") + ") AS u(" + aliases.joined(separator: ", ") + ")"
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
