public import RouterCore
import RouterSupport

/// `stdout`: writes each entry as it arrived, one line each, to standard output.
public final class StdoutOutput: OutputStage {
    /// The `stdout` declaration.
    public static let declaration = StageDeclaration(
        type: "stdout",
        summary: "Writes each entry as it arrived, one JSON line each, to standard output.",
        counters: [CounterDeclaration("write_errors", "Writes to standard output that failed (a closed pipe).")]
    )

    private let writeErrors: Counter

    /// Makes the output.
    public init(context: StageContext) throws {
        writeErrors = context.counters.counter("write_errors")
    }

    /// The writer, on the output's thread.
    public func makeWriter() -> Writer { Writer(writeErrors: writeErrors) }

    /// Writes each group with one write(2); a write that fails (a closed pipe) drops its entries, counted.
    public struct Writer: OutputWriter {
        let writeErrors: Counter
        private var buffer: [UInt8] = []

        init(writeErrors: Counter) { self.writeErrors = writeErrors }

        /// One write(2) for the whole group.
        public mutating func write(_ group: WriteGroup) -> WriteOutcome {
            buffer.removeAll(keepingCapacity: true)
            for batch in group.batches { batch.appendLines(to: &buffer) }
            guard let code = FileDescriptorWriter.writeAll(1, buffer) else { return .written }
            writeErrors.add()
            return .dropped(
                reason: "write_failed",
                detail: "cannot write to standard output: \(FileDescriptorWriter.describe(code))")
        }
    }
}
