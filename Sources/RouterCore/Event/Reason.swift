internal import Synchronization

/// Why an event left the main path (`not_json`, `queue_full`, `bad_signature`), as a small interned id.
///
/// Reasons are interned once, when a stage is set up, so that events carry a 2-byte id rather than a string.
/// Interning the same name twice gives the same reason.
public struct Reason: Sendable, Hashable, CustomStringConvertible {
    /// The interned id; 0 is ``none``.
    public let id: UInt16

    /// No reason.
    public static let none = Reason(id: 0)

    private init(id: UInt16) { self.id = id }

    /// Interns `name` (snake_case by convention). At most 65,535 distinct names; beyond that every new name maps
    /// to `other`, so a misbehaving stage cannot grow memory without bound.
    public init(_ name: String) {
        self.id = reasonTable.withLock { table in
            if let existing = table.ids[name] { return existing }
            guard table.names.count < Int(UInt16.max) else { return table.ids["other"] ?? 0 }
            let id = UInt16(table.names.count)
            table.names.append(name)
            table.ids[name] = id
            return id
        }
    }

    /// The name it was interned with; empty for ``none``.
    public var name: String {
        reasonTable.withLock { table in Int(id) < table.names.count ? table.names[Int(id)] : "" }
    }

    /// The name.
    public var description: String { name }
}

private struct ReasonTable {
    var names: [String] = [""]
    var ids: [String: UInt16] = ["": 0]
}

private let reasonTable = Mutex(ReasonTable())
