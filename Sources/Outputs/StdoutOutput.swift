public import Router

/// `stdout`: writes each entry as it arrived, one line each, to standard output.
public final class StdoutOutput: OutputStage {
    /// The `stdout` declaration.
    public static let declaration = StageDeclaration(
        type: "stdout",
        summary: "Writes each entry as it arrived, one JSON line each, to standard output.",
        counters: [CounterDeclaration("write_errors", "Writes to standard output that failed (a closed pipe).")]
    )

    private let written: Counter
    private let writeErrors: Counter
    private let counters: StageCounters
    private let context: StageContext

    /// Makes the output.
    public init(context: StageContext) throws {
        self.context = context
        counters = context.counters
        written = context.counters.counter("events_out", label: "port", value: "default")
        writeErrors = context.counters.counter("write_errors")
    }

    /// Writes everything queued with one write(2) per take.
    public func run(_ queue: OutputQueue) throws {
        var buffer: [UInt8] = []
        while true {
            guard case .batches(let batches) = queue.take(maxEvents: 4096) else { return }
            buffer.removeAll(keepingCapacity: true)
            var count = 0
            for batch in batches {
                batch.appendLines(to: &buffer)
                count += batch.count
            }
            if let code = FileDescriptorWriter.writeAll(1, buffer) {
                let reason = "cannot write to standard output: \(FileDescriptorWriter.describe(code))"
                writeErrors.add()
                counters.dropped(count, reason: "write_failed")
                context.health.set(.degraded(reason))
                context.logger.error("write failed", metadata: ["error": "\(reason)", "events_lost": "\(count)"])
                for batch in batches { batch.settle(.failed(reason)) }
            } else {
                written.add(count)
                for batch in batches { batch.settle(.written) }
            }
        }
    }
}
