/// An output's `buffer:` block: where what the output has accepted waits until it is written.
///
/// ```yaml
/// buffer:
///   type: disk              # memory (the default: the output's queue) | disk
///   path: ./data/to_broker  # default: <router.data_dir>/<output name>
///   max_size: 10GiB         # bytes on disk; past it, when_full
///   when_full: block        # block | drop_newest
///   sync: 100ms             # every_batch | a duration | none
///   acknowledge: when_buffered  # when_buffered | when_written
/// ```
public struct BufferSettings: Sendable, Equatable {
    /// Where entries wait.
    public enum Kind: String, Sendable, CaseIterable {
        /// In the output's queue (`queue_max_events`), lost with the process.
        case memory
        /// In checksummed segment files, kept across crashes and restarts.
        case disk
    }

    /// How often appended records are made durable with `fsync`.
    public enum Sync: Sendable, Equatable {
        /// After every append, before the entries' senders hear.
        case everyBatch
        /// At most this long after an append.
        case interval(Duration)
        /// Never explicitly: the kernel writes back when it likes (survives `kill -9`, not a power cut).
        case none
    }

    /// When senders upstream (an `ack` filter, an `amqp` input) hear that the output has the entry.
    public enum Acknowledge: String, Sendable, CaseIterable {
        /// Once the entry is durable in the buffer (per `sync`).
        case whenBuffered = "when_buffered"
        /// Only once the output has written it for good (never, for an entry read back after a restart: its
        /// sender is gone).
        case whenWritten = "when_written"
    }

    /// What an append does when the buffer holds `max_size` bytes (or its disk is full).
    public enum WhenFull: String, Sendable, CaseIterable {
        /// Wait until the output has written enough to make room; the output's queue then fills and applies its
        /// own `when_full`.
        case block
        /// Drop the new entries, counted as `events_dropped{reason="buffer_full"}`.
        case dropNewest = "drop_newest"
    }

    /// Memory or disk.
    public var kind: Kind
    /// The buffer's directory, as written (nil: `<router.data_dir>/<output name>`).
    public var path: String?
    /// Most bytes of segment files.
    public var maxSize: Int
    /// What an append does at `maxSize`.
    public var whenFull: WhenFull
    /// How often appends are synced.
    public var sync: Sync
    /// When senders hear.
    public var acknowledge: Acknowledge

    /// The smallest `max_size`: room for a few segments of the smallest size.
    public static let minimumSize = 1 << 20

    /// Makes settings.
    public init(
        kind: Kind = .memory, path: String? = nil, maxSize: Int = 1 << 30, whenFull: WhenFull = .block,
        sync: Sync = .interval(.milliseconds(100)), acknowledge: Acknowledge = .whenBuffered
    ) {
        self.kind = kind
        self.path = path
        self.maxSize = maxSize
        self.whenFull = whenFull
        self.sync = sync
        self.acknowledge = acknowledge
    }

    /// The memory queue, as when `buffer:` is left out.
    public static let memory = BufferSettings()

    /// The declaration of `buffer:`, which the runtime adds to every output.
    public static let option = StageOption<OptionTree?>.tree(
        "buffer", shape: "mapping: type, path, max_size, when_full, sync, acknowledge",
        "Where accepted entries wait for the output. `type: memory` (the default) is the queue "
            + "(`queue_max_events`). `type: disk` keeps them in checksummed segment files under `path` (default "
            + "`<router.data_dir>/<output name>`), up to `max_size` (default 1GiB; past it `when_full`: `block` or "
            + "`drop_newest`), synced per `sync` (`every_batch`, a duration (default 100ms) or `none`), and "
            + "delivered after a crash or restart. `acknowledge: when_buffered` (default) answers senders once an "
            + "entry is durable in the buffer; `when_written` once the output wrote it. See the README, "
            + "\"Disk buffers\".")
}
