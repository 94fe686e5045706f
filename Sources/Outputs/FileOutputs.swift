public import Router

/// Options both file outputs take.
private let formatOption = OptionDeclaration(
    "format", .oneOf(["raw", "dead_letter"]), .defaultValue(.string("raw")),
    "`raw`: each entry as it arrived, one line each. `dead_letter`: one JSON object per entry with the time, the "
        + "reason it was refused, a detail, the sender and the entry itself (and its exact bytes in base64 when they "
        + "are not UTF-8).")

private let fsyncOption = OptionDeclaration(
    "fsync", .bool, .defaultValue(.bool(false)),
    "fsync(2) after each write, before entries count as written (for `ack`). Costs a disk flush per write.")

private let fileCounters = [
    CounterDeclaration("write_errors", "Writes that failed (the entries are held and retried)."),
    CounterDeclaration("rotations", "Times the file was rotated."),
    CounterDeclaration("flushes", "Writes of buffered entries (one write(2) each)."),
]

/// `rotating_file`: buffers entries and writes them when `flush_count` are waiting or the oldest is
/// `flush_interval` old; rotates at `max_size` keeping `max_archives` (path.1 newest ... path.N).
public final class RotatingFileOutput: OutputStage {
    /// The `rotating_file` declaration.
    public static let declaration = StageDeclaration(
        type: "rotating_file",
        summary: "Buffers entries, writes them by count or age, and rotates the file by size (path.1 ... path.N).",
        options: [
            OptionDeclaration(
                "path", .string, .required,
                "File to append to; its directory is created. Another `file` or `rotating_file` may name the same "
                    + "path: they share one writer and one rotation."),
            OptionDeclaration(
                "flush_count", .integer(1...1_000_000), .defaultValue(.integer(100)),
                "Write when this many entries are buffered. Larger means fewer writes and more entries at risk if "
                    + "the machine (not routerd: it flushes on shutdown) dies."),
            OptionDeclaration(
                "flush_interval", .duration(.milliseconds(1)...(.seconds(86400))),
                .defaultValue(.duration(.seconds(5))),
                "Write when the oldest buffered entry is this old, however few there are."),
            OptionDeclaration(
                "max_size", .size(1...(1 << 50)), .defaultValue(.size(100_000_000)),
                "Rotate before a write would take the file past this size; rotation happens between lines, so a "
                    + "line is never split (a single line longer than this gets a file of its own)."),
            OptionDeclaration(
                "max_archives", .integer(0...1000), .defaultValue(.integer(10)),
                "Archives kept: path.1 is the newest, path.N the oldest; older ones are removed. 0 keeps none."),
            fsyncOption,
            formatOption,
        ],
        counters: fileCounters
    )

    private let loop: FileWriterLoop

    /// Opens (or shares) the file.
    public init(context: StageContext) throws {
        let path = try context.options.string("path")
        let rotation = RotationPolicy(
            maxSize: try context.options.size("max_size"), maxArchives: try context.options.integer("max_archives"))
        let file = try SharedFiles.acquire(path: path, rotation: rotation, stage: context.name)
        loop = try FileWriterLoop(
            file: file, context: context, flushCount: try context.options.integer("flush_count"),
            flushInterval: try context.options.duration("flush_interval"))
    }

    deinit {
        SharedFiles.release(loop.file)
    }

    /// Buffers, writes and rotates until the queue closes; then writes what it holds.
    public func run(_ queue: OutputQueue) throws {
        loop.run(queue)
    }
}

/// `file`: writes each batch at once, with one write(2) per batch (never per entry), optionally fsync'd.
public final class FileOutput: OutputStage {
    /// The `file` declaration.
    public static let declaration = StageDeclaration(
        type: "file",
        summary: "Appends each batch at once (one write per batch), optionally with fsync.",
        options: [
            OptionDeclaration(
                "path", .string, .required,
                "File to append to; its directory is created. When a `rotating_file` names the same path, this "
                    + "output writes through the same writer and follows its rotation."),
            fsyncOption,
            formatOption,
        ],
        counters: fileCounters
    )

    private let loop: FileWriterLoop

    /// Opens (or shares) the file.
    public init(context: StageContext) throws {
        let file = try SharedFiles.acquire(path: try context.options.string("path"), rotation: nil, stage: context.name)
        loop = try FileWriterLoop(file: file, context: context, flushCount: 1, flushInterval: .zero)
    }

    deinit {
        SharedFiles.release(loop.file)
    }

    /// Writes each take at once until the queue closes.
    public func run(_ queue: OutputQueue) throws {
        loop.run(queue)
    }
}
