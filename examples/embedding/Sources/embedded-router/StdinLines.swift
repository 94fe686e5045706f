import Glibc
import Router
import Synchronization

/// A custom input: one entry per line of standard input, read until end of file, emitted in batches.
final class StdinLines: InputStage {
    static let batchSize = StageOption<Int>.integer(
        "batch_size", 1...65536, default: 256, "Most lines in one batch.")

    static let declaration = StageDeclaration(
        type: "stdin_lines", summary: "Reads one entry per line from standard input.", options: [batchSize],
        example: StageExample(
            "batch_size: 64",
            send: { _, _ in throw StageError("stdin_lines reads this process's standard input") }))

    private let batchSize: Int
    private let stopping = Atomic<Bool>(false)

    init(context: StageContext) throws {
        batchSize = try context.options.value(Self.batchSize)
    }

    func run(_ emitter: InputEmitter) throws {
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var batch = Batch()
        while !stopping.load(ordering: .acquiring) {
            // Wake every 100 ms to notice a stop; read what has arrived.
            var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else {
                if !batch.isEmpty { emitter.emit(batch) }
                batch = Batch()
                continue
            }
            let count = read(0, &chunk, chunk.count)
            if count <= 0 { break }  // end of file (or an error): what came is emitted below
            pending += chunk[0..<count]
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[..<newline]
                if !line.isEmpty { batch.append(line) }
                pending.removeSubrange(...newline)
                if batch.count >= batchSize {
                    emitter.emit(batch)
                    batch = Batch()
                }
            }
        }
        if !pending.isEmpty { batch.append(pending) }
        emitter.emit(batch)
    }

    func requestStop() { stopping.store(true, ordering: .releasing) }
}
