import Foundation
import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import RouterSupport
import Synchronization
import Testing

// MARK: - Helpers

/// An output stage built by hand and run on a thread of its own, fed through its queue as the runtime does.
private final class RunningOutput {
    let context: StageContext
    let queue: OutputQueue
    private let stage: any OutputStage
    private let thread: WorkerThread
    private let failure = ThrownError()
    private var finished = false

    init(_ stageType: any OutputStage.Type, name: String, options: [String: OptionValue]) throws {
        let context = try StageHarness.context(for: stageType, name: name, options: options)
        self.context = context
        let stage = try stageType.init(context: context)
        let queue = try OutputQueue(options: context.options, counters: context.counters)
        let failure = self.failure
        thread = WorkerThread(name: "test-\(name)") {
            do {
                try stage.drive(queue: queue, context: context)
            } catch {
                failure.message.withLock { $0 = "\(error)" }
            }
        }
        self.stage = stage
        self.queue = queue
        try thread.start()
    }

    deinit {
        finish()
    }

    /// Closes the queue and waits until the output has flushed and returned.
    func finish() {
        guard !finished else { return }
        finished = true
        queue.close()
        thread.join()
        #expect(failure.message.withLock { $0 } == nil, "run() threw")
    }

    var counters: StageCounters { context.counters }
}

/// What a thread's body threw, if anything.
private final class ThrownError: Sendable {
    let message = Mutex<String?>(nil)
}

/// A tracker whose outcome a test can wait for.
private final class OutcomeLatch: Sendable {
    private let latch = Latch()
    private let reported = Mutex<[DeliveryOutcome]>([])

    func tracker() -> DeliveryTracker {
        DeliveryTracker { [self] outcome in
            reported.withLock { $0.append(outcome) }
            latch.open()
        }
    }

    /// The outcomes reported so far.
    var outcomes: [DeliveryOutcome] { reported.withLock { $0 } }

    /// The first outcome, waiting for it up to `timeout`.
    func wait(timeout: Duration = .seconds(10)) -> DeliveryOutcome? {
        _ = latch.wait(timeout: timeout)
        return outcomes.first
    }
}

/// Pushes a batch of `lines` tracked by a new tracker, releasing the tracker's creation hold as the runtime does.
private func pushTracked(_ lines: [String], to output: RunningOutput) -> OutcomeLatch {
    let outcome = OutcomeLatch()
    let tracker = outcome.tracker()
    var batch = Batch(lines: lines)
    for index in batch.events.indices { batch.events[index].flags.insert(.tracked) }
    batch.trackers = [tracker]
    output.queue.push(batch)
    tracker.releaseCreationHold()
    return outcome
}

/// The lines of a file (without their newlines), or nil when it does not exist; records an issue when the file
/// does not end with a newline (a torn last line).
private func lines(of path: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> [String]? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    guard !data.isEmpty else { return [] }
    if data.last != 0x0A { Issue.record("'\(path)' does not end with a newline", sourceLocation: sourceLocation) }
    return String(decoding: data.dropLast(), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .map(String.init)
}

private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

/// `entry-0000000000042`: 19 bytes, 20 with its newline, so that five fill a 100-byte file exactly.
private func numbered(_ number: Int) -> String {
    let digits = String(number)
    return "entry-" + String(repeating: "0", count: 13 - digits.count) + digits
}

// MARK: - rotating_file and file

@Suite("file outputs")
struct FileOutputTests {
    @Test(arguments: ["rotating_file", "file"])
    func fileOutput_whenTheFileEndsInAPartialLine_endsItFirstSoTheNextEntryIsALineOfItsOwn(_ type: String) throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        // What a crash in the middle of a write leaves: a whole line, then part of one.
        #expect(FileManager.default.createFile(atPath: path, contents: Data("{\"whole\":1}\n{\"torn\":".utf8)))
        let stageType: any OutputStage.Type = type == "file" ? FileOutput.self : RotatingFileOutput.self
        var options: [String: OptionValue] = ["path": .string(path)]
        if type == "rotating_file" { options["flush_count"] = .integer(1) }
        let output = try RunningOutput(stageType, name: "server_log", options: options)
        #expect(pushTracked(["one", "two"], to: output).wait() == .written(outputs: 1))
        output.finish()
        #expect(lines(of: path) == [#"{"whole":1}"#, #"{"torn":"#, "one", "two"])
        #expect(output.counters.value("torn_lines_closed") == 1)
    }

    @Test func fileOutput_whenTheFileEndsInANewline_addsNothing() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        #expect(FileManager.default.createFile(atPath: path, contents: Data("{\"whole\":1}\n".utf8)))
        let output = try RunningOutput(FileOutput.self, name: "server_log", options: ["path": .string(path)])
        #expect(pushTracked(["one"], to: output).wait() == .written(outputs: 1))
        output.finish()
        #expect(lines(of: path) == [#"{"whole":1}"#, "one"])
        #expect(output.counters.value("torn_lines_closed") == 0)
    }

    @Test func rotatingFile_flushesWhenFlushCountEntriesAreBuffered() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: ["path": .string(path), "flush_count": .integer(3), "flush_interval": .duration(.seconds(3600))])
        let first = pushTracked(["one", "two"], to: output)
        // Two entries, an hour before the interval: nothing can have been written yet (the file exists: it is
        // opened when the output is built).
        #expect(lines(of: path) == [])
        #expect(first.outcomes.isEmpty)
        let second = pushTracked(["three"], to: output)
        #expect(first.wait() == .written(outputs: 1))
        #expect(second.wait() == .written(outputs: 1))
        #expect(lines(of: path) == ["one", "two", "three"])
        #expect(output.counters.value("flushes") == 1)
        #expect(output.counters.value("events_out", label: "port", value: "default") == 3)
        output.finish()
    }

    @Test func rotatingFile_flushesWhenTheOldestEntryIsFlushIntervalOld() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(1000), "flush_interval": .duration(.milliseconds(50)),
            ])
        let outcome = pushTracked(["one", "two"], to: output)
        #expect(outcome.wait() == .written(outputs: 1))
        #expect(lines(of: path) == ["one", "two"])
        #expect(output.counters.value("flushes") == 1)
        output.finish()
    }

    @Test func rotatingFile_flushesWhatItHoldsWhenTheQueueCloses() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(1000), "flush_interval": .duration(.seconds(3600)),
            ])
        let outcome = pushTracked((1...5).map(numbered), to: output)
        #expect(outcome.outcomes.isEmpty)
        output.finish()
        #expect(outcome.outcomes == [.written(outputs: 1)])
        #expect(lines(of: path) == (1...5).map(numbered))
        #expect(output.counters.total("events_dropped") == 0)
    }

    @Test func rotatingFile_rotatesAtMaxSizeKeepingEveryLineWholeAndInOrder() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(1), "max_size": .size(100),
                "max_archives": .integer(3),
            ])
        // 18 lines of 20 bytes in batches of 1, 2, 3, ... entries: four files' worth, so nothing is removed yet.
        var next = 1
        var size = 1
        while next <= 18 {
            let last = min(18, next + size - 1)
            output.queue.push(Batch(lines: (next...last).map(numbered)))
            next = last + 1
            size += 1
        }
        output.finish()
        #expect(lines(of: path + ".3") == (1...5).map(numbered))
        #expect(lines(of: path + ".2") == (6...10).map(numbered))
        #expect(lines(of: path + ".1") == (11...15).map(numbered))
        #expect(lines(of: path) == (16...18).map(numbered))
        #expect(!exists(path + ".4"))
        #expect(output.counters.value("rotations") == 3)
        #expect(output.counters.value("events_out", label: "port", value: "default") == 18)
    }

    @Test func rotatingFile_keepsExactlyMaxArchivesAndRemovesOlderOnes() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(7), "flush_interval": .duration(.milliseconds(1)),
                "max_size": .size(100), "max_archives": .integer(3),
            ])
        output.queue.push(Batch(lines: (1...27).map(numbered)))
        for number in 28...40 { output.queue.push(Batch(lines: [numbered(number)])) }
        output.finish()
        let files = [path + ".3", path + ".2", path + ".1", path]
        var kept: [String] = []
        for file in files {
            let content = try #require(lines(of: file), "\(file) is missing")
            #expect(content.count == 5, "\(file)")
            kept += content
        }
        #expect(kept == (21...40).map(numbered))
        #expect(!exists(path + ".4"))
        let sizes = try files.map { try #require(FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) }
        #expect(sizes.allSatisfy { $0 <= 100 })
    }

    @Test func rotatingFile_whenOneLineIsLongerThanMaxSize_givesItAFileOfItsOwn() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: ["path": .string(path), "flush_count": .integer(3), "max_size": .size(10)])
        let long = String(repeating: "x", count: 30)
        output.queue.push(Batch(lines: ["aaa", long, "bbb"]))
        output.finish()
        #expect(lines(of: path + ".2") == ["aaa"])
        #expect(lines(of: path + ".1") == [long])
        #expect(lines(of: path) == ["bbb"])
    }

    @Test func rotatingFile_withNoArchives_startsTheFileAfreshAtMaxSize() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("server.log")
        let output = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(1), "max_size": .size(100), "max_archives": .integer(0),
            ])
        output.queue.push(Batch(lines: (1...12).map(numbered)))
        output.finish()
        #expect(lines(of: path) == (11...12).map(numbered))
        #expect(!exists(path + ".1"))
        #expect(output.counters.value("rotations") == 2)
    }

    @Test func fileAndRotatingFile_onTheSamePath_loseDuplicateAndTearNothing() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("shared.log")
        let rotating = try RunningOutput(
            RotatingFileOutput.self, name: "server_log",
            options: [
                "path": .string(path), "flush_count": .integer(10), "flush_interval": .duration(.milliseconds(5)),
                "max_size": .size(4096), "max_archives": .integer(1000),
            ])
        let plain = try RunningOutput(FileOutput.self, name: "errors_log", options: ["path": .string(path)])
        let perWriter = 3000
        let done = [Latch(), Latch()]
        var pushers: [WorkerThread] = []
        for (index, (prefix, output)) in [("A", rotating), ("B", plain)].enumerated() {
            let queue = output.queue
            let latch = done[index]
            let pusher = WorkerThread(name: "test-push-\(prefix)") {
                var number = 0
                while number < perWriter {
                    let count = min(perWriter - number, 1 + number % 7)
                    queue.push(Batch(lines: (number..<number + count).map { "\(prefix)-\(numbered($0))" }))
                    number += count
                }
                latch.open()
            }
            try pusher.start()
            pushers.append(pusher)
        }
        guard done.allSatisfy({ $0.wait(timeout: .seconds(60)) }) else {
            Issue.record("the pushing threads did not finish")
            return
        }
        for pusher in pushers { pusher.join() }
        rotating.finish()
        plain.finish()

        var files: [String] = []
        var archive = 1
        while exists("\(path).\(archive)") {
            files.insert("\(path).\(archive)", at: 0)
            archive += 1
        }
        files.append(path)
        #expect(files.count > 2, "the test should make the file rotate several times")
        var written: [String] = []
        for file in files { written += try #require(lines(of: file)) }
        let expectedA = (0..<perWriter).map { "A-\(numbered($0))" }
        let expectedB = (0..<perWriter).map { "B-\(numbered($0))" }
        // Oldest archive first: each writer's lines appear whole, once, and in the order they were pushed.
        #expect(written.filter { $0.hasPrefix("A-") } == expectedA)
        #expect(written.filter { $0.hasPrefix("B-") } == expectedB)
        #expect(written.count == 2 * perWriter)
        #expect(rotating.counters.total("events_dropped") + plain.counters.total("events_dropped") == 0)
    }

    @Test func file_withDeadLetterFormat_writesReasonDetailSenderAndEntry() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("dead.log")
        let output = try RunningOutput(
            FileOutput.self, name: "dead_letters", options: ["path": .string(path), "format": .string("dead_letter")])
        var batch = Batch(receivedAtNanos: 1_795_341_600_123_456_789)
        batch.details = ["missing field 'host'"]
        let notJSON = batch.append(Array(#"{"level":"#.utf8), sender: .ipv4(127, 0, 0, 1, port: 5000))
        batch.events[notJSON].reason = Reason("not_json")
        batch.events[notJSON].reasonOffset = 9
        let missing = batch.append(Array(#"{"message":"<b>\n"}"#.utf8))
        batch.events[missing].reason = Reason("missing_field")
        batch.events[missing].detail = 0
        let notUTF8 = batch.append([0x7B, 0xFF, 0x7D], sender: .ipv4(10, 0, 0, 2, port: 40_000))
        batch.events[notUTF8].reason = Reason("not_utf8")
        batch.events[notUTF8].reasonOffset = 1
        batch.append(Array("plain".utf8))
        output.queue.push(batch)
        output.finish()
        #expect(
            lines(of: path) == [
                #"{"time":"2026-11-22T10:00:00.123456Z","reason":"not_json","offset":9,"sender":"127.0.0.1:5000","entry":"{\"level\":"}"#,
                #"{"time":"2026-11-22T10:00:00.123456Z","reason":"missing_field","detail":"missing field 'host'","entry":"{\"message\":\"\u003cb\u003e\\n\"}"}"#,
                #"{"time":"2026-11-22T10:00:00.123456Z","reason":"not_utf8","offset":1,"sender":"10.0.0.2:40000","entry":"{\#u{FFFD}}","entry_base64":"e/99"}"#,
                #"{"time":"2026-11-22T10:00:00.123456Z","reason":"unknown","entry":"plain"}"#,
            ])
    }

    @Test(arguments: ["rotating_file", "file"])
    func fileOutput_whenTheFileCannotBeOpened_refusesToBeBuiltWithTheReason(_ type: String) throws {
        let directory = try TemporaryDirectory()
        // A path under a regular file fails with ENOTDIR, even for root (which ignores permission bits).
        let blocker = directory.file("blocker")
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let path = blocker + "/server.log"
        let stageType: any OutputStage.Type = type == "file" ? FileOutput.self : RotatingFileOutput.self
        do {
            _ = try RunningOutput(stageType, name: "server_log", options: ["path": .string(path)])
        } catch {
            #expect("\(error)".contains("cannot open '\(path)': Not a directory"), "\(error)")
        }
    }

    @Test func fileOutput_whileWritesFail_holdsEntriesWithoutAnsweringAndFailsThemOnlyWhenGivingUp() throws {
        // Writes to /dev/full fail with ENOSPC.
        let output = try RunningOutput(
            FileOutput.self, name: "server_log",
            options: ["path": .string("/dev/full"), "drain_timeout": .duration(.milliseconds(300))])
        let outcome = pushTracked(["one", "two"], to: output)
        let deadline = Date(timeIntervalSinceNow: 10)
        while output.counters.value("write_errors") < 1 && Date() < deadline { usleep(10_000) }
        #expect(output.counters.value("write_errors") >= 1)
        #expect(
            outcome.wait(timeout: .milliseconds(500)) == nil, "a held entry is not answered while it may be written")
        output.finish()
        #expect(outcome.outcomes.count == 1)
        #expect(outcome.outcomes.first.map { "\($0)".contains("still unavailable at shutdown") } == true)
        #expect(output.counters.value("events_dropped", label: "reason", value: "write_failed") == 2)
        #expect(output.counters.value("events_out", label: "port", value: "default") == 0)
    }
}
