public import RouterCore

/// Options both file outputs take.
enum FileOptions {
    static let format = StageOption<String>.oneOf(
        "format", LineFormat.allCases.map(\.rawValue), default: LineFormat.raw.rawValue,
        "`raw`: each entry as it arrived, one line each. `dead_letter`: one JSON object per entry with the time, the "
            + "reason it was refused, a detail, the sender and the entry itself (and its exact bytes in base64 when "
            + "they are not UTF-8).")

    static let fsync = StageOption<Bool>.bool(
        "fsync", default: false,
        "fsync(2) after each write, before entries count as written (for `ack`). Costs a disk flush per write.")

    static let counters = [
        CounterDeclaration("write_errors", "Writes that failed (the entries are held and retried)."),
        CounterDeclaration("rotations", "Times the file was rotated."),
        CounterDeclaration("flushes", "Writes of buffered entries (one write(2) each)."),
        CounterDeclaration(
            "torn_lines_closed",
            "Times the file, when opened, ended in a partial line (a crash in the middle of a write) and was ended with "
                + "a newline, so that the next entry starts a line of its own."),
    ]
}

/// `rotating_file`: buffers entries and writes them when `flush_count` are waiting or the oldest is
/// `flush_interval` old; rotates at `max_size` keeping `max_archives` (path.1 newest ... path.N).
public final class RotatingFileOutput: OutputStage, FileReopening {
    /// The `rotating_file` declaration.
    public static let declaration = StageDeclaration(
        type: "rotating_file",
        summary: "Buffers entries, writes them by count or age, and rotates the file by size (path.1 ... path.N).",
        options: [
            path, SharedOptions.flushCount, SharedOptions.flushInterval, maxSize, maxArchives, FileOptions.fsync,
            FileOptions.format,
        ],
        counters: FileOptions.counters,
        example: StageExample(
            """
            path: ${EXAMPLE_DIR}/server.log
            flush_count: 100
            flush_interval: 1s
            max_size: 10MiB
            """)
    )

    static let path = StageOption<String>.string(
        "path",
        "File to append to; its directory is created. Another `file` or `rotating_file` may name the same path: they "
            + "share one writer and one rotation.")
    static let maxSize = StageOption<Int>.size(
        "max_size", 1...(1 << 50), default: 100_000_000,
        "Rotate before a write would take the file past this size; rotation happens between lines, so a line is "
            + "never split (a single line longer than this gets a file of its own).")
    static let maxArchives = StageOption<Int>.integer(
        "max_archives", 0...1000, default: 10,
        "Archives kept: path.1 is the newest, path.N the oldest; older ones are removed. 0 keeps none.")

    private let file: SharedFile
    private let context: StageContext
    /// Writes by `flush_count` and `flush_interval`, and keeps taking while writes fail.
    public let traits: OutputTraits

    /// Opens (or shares) the file.
    public init(context: StageContext) throws {
        let options = context.options
        let rotation = RotationPolicy(
            maxSize: try options.value(Self.maxSize), maxArchives: try options.value(Self.maxArchives))
        file = try SharedFiles.acquire(path: try options.value(Self.path), rotation: rotation, stage: context.name)
        self.context = context
        traits = FileWriter.traits(
            flushCount: try options.value(SharedOptions.flushCount),
            flushInterval: try options.value(SharedOptions.flushInterval))
    }

    deinit {
        SharedFiles.release(file, stage: context.name, rotating: true)
    }

    /// The file writer, on the output's thread.
    public func makeWriter() throws -> some OutputWriter {
        try FileWriter(file: file, context: context)
    }

    /// Reopens the file at its path (after an external rotation).
    public func reopenFiles() {
        file.reopen()
    }
}

/// `file`: writes each batch at once, with one write(2) per batch (never per entry), optionally fsync'd.
public final class FileOutput: OutputStage, FileReopening {
    /// The `file` declaration.
    public static let declaration = StageDeclaration(
        type: "file",
        summary: "Appends each batch at once (one write per batch), optionally with fsync.",
        options: [path, FileOptions.fsync, FileOptions.format],
        counters: FileOptions.counters,
        example: StageExample("path: ${EXAMPLE_DIR}/dead-letter.log\nformat: dead_letter")
    )

    static let path = StageOption<String>.string(
        "path",
        "File to append to; its directory is created. When a `rotating_file` names the same path, this output "
            + "writes through the same writer and follows its rotation.")

    private let file: SharedFile
    private let context: StageContext

    /// Opens (or shares) the file.
    public init(context: StageContext) throws {
        file = try SharedFiles.acquire(path: try context.options.value(Self.path), rotation: nil, stage: context.name)
        self.context = context
    }

    deinit {
        SharedFiles.release(file, stage: context.name, rotating: false)
    }

    /// Each take written at once; keeps taking while writes fail.
    public var traits: OutputTraits { FileWriter.traits() }

    /// The file writer, on the output's thread.
    public func makeWriter() throws -> some OutputWriter {
        try FileWriter(file: file, context: context)
    }

    /// Reopens the file at its path (after an external rotation).
    public func reopenFiles() {
        file.reopen()
    }
}
