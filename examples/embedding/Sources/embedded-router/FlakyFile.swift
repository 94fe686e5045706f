import Glibc
import Router

/// A custom output on the runtime's driver: appends each group of entries to a file, and fails its first
/// `fail_first` writes on purpose. It only writes; the driver retries with backoff, reports the outage, drains
/// at shutdown, counts and settles.
final class FlakyFile: OutputStage {
    static let path = StageOption<String>.string("path", "File to append the entries to.")
    static let failFirst = StageOption<Int>.integer(
        "fail_first", 0...1000, default: 0, "How many writes fail, on purpose, before they work.")

    static let declaration = StageDeclaration(
        type: "flaky_file", summary: "Appends entries to a file, failing its first writes on purpose.",
        options: [path, failFirst],
        counters: [CounterDeclaration("failed_writes", "Writes that failed on purpose.")],
        example: StageExample("path: ${EXAMPLE_DIR}/flaky.jsonl\nfail_first: 1"))

    private let path: String
    private let failFirst: Int
    private let failedWrites: Counter

    init(context: StageContext) throws {
        path = try context.options.value(Self.path)
        failFirst = try context.options.value(Self.failFirst)
        failedWrites = context.counters.counter("failed_writes")
    }

    func makeWriter() -> Writer { Writer(path: path, failuresLeft: failFirst, failedWrites: failedWrites) }

    struct Writer: OutputWriter {
        let path: String
        var failuresLeft: Int
        let failedWrites: Counter
        var descriptor: Int32 = -1

        mutating func open() throws {
            guard descriptor < 0 else { return }
            descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw StageError("cannot open \(path): \(String(cString: strerror(errno)))") }
        }

        mutating func write(_ group: WriteGroup) -> WriteOutcome {
            if failuresLeft > 0 {
                failuresLeft -= 1
                failedWrites.add()
                return .retry("failing on purpose (\(failuresLeft) more to go)")
            }
            var buffer: [UInt8] = []
            for batch in group.batches { batch.appendLines(to: &buffer) }
            let written = buffer.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            return written == buffer.count ? .written : .retry("short write to \(path)")
        }

        mutating func close() {
            if descriptor >= 0 { Glibc.close(descriptor) }
            descriptor = -1
        }
    }
}
