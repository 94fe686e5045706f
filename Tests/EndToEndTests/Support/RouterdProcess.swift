import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Where the package and the built `routerd` binary are.
enum TestPaths {
    /// The package root (two levels above this file's folder).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `ROUTERD_BINARY`, or `.build/debug/routerd` under the package root.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["ROUTERD_BINARY"], !path.isEmpty { return path }
        // The test bundle sits next to `routerd` in <scratch>/debug, whatever --scratch-path was used.
        if let sibling = Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("routerd"),
            FileManager.default.isExecutableFile(atPath: sibling.path)
        {
            return sibling.path
        }
        return packageRoot.appendingPathComponent(".build/debug/routerd").path
    }

    /// A new empty temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("routerd-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The real `routerd` binary, started with a config, with its stderr JSON log captured.
final class RouterdProcess: @unchecked Sendable {
    // Safe to share: `process` is set in init; log lines are guarded by `lines`.
    let process: Process
    let directory: URL
    let stdoutURL: URL
    private let stderrPipe = Pipe()
    private var stderrReader: PipeReader?
    private let stdoutPipe = Pipe()
    private let stdoutReader = Mutex<PipeReader?>(nil)

    /// Starts `routerd -c <config>` with `arguments` after it, in `directory`, with extra environment.
    /// Where routerd's standard output goes.
    enum StandardOutput {
        /// A file (``stdoutURL``), read with ``fileLines(_:)``.
        case file
        /// A pipe nobody reads until ``startDrainingStdout()``: a `stdout` output then blocks, which holds a
        /// graceful shutdown open for as long as a test needs.
        case heldPipe
    }

    /// Starts `routerd -c <config>` with `arguments` after it, in `directory`, with extra environment.
    ///
    /// Another program that runs a router from a config (the embedding example) is started the same way with
    /// `executable` and `configArguments`; `standardInput` gives it a pipe to read.
    init(
        config: String, directory: URL, environment: [String: String] = [:], extraArguments: [String] = [],
        standardOutput: StandardOutput = .file, executable: String = TestPaths.binary,
        configArguments: (String) -> [String] = { ["-c", $0] }, standardInput: Pipe? = nil
    ) throws {
        self.directory = directory
        let configURL = directory.appendingPathComponent("router.yaml")
        try config.write(to: configURL, atomically: false, encoding: .utf8)
        stdoutURL = directory.appendingPathComponent("stdout.txt")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = configArguments(configURL.path) + extraArguments
        if let standardInput { process.standardInput = standardInput }
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        switch standardOutput {
        case .file: process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        case .heldPipe: process.standardOutput = stdoutPipe
        }
        process.standardError = stderrPipe
        try process.run()
        stderrReader = PipeReader(stderrPipe)
    }

    /// Every complete stderr line so far.
    var logLines: [String] {
        stderrReader?.completeLines ?? []
    }

    /// The parsed JSON log lines whose message is `message`.
    func logs(_ message: String) -> [[String: Any]] {
        logLines.compactMap { line in
            guard let data = line.data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                object["message"] as? String == message
            else { return nil }
            return object
        }
    }

    /// Waits until `count` log lines with `message` exist (or the process exits), up to `timeout` seconds.
    @discardableResult
    func waitForLog(_ message: String, count: Int = 1, timeout: Double = 20) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let found = logs(message)
            if found.count >= count { return found }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure(
            "routerd did not log '\(message)' within \(timeout)s; stderr:\n" + logLines.joined(separator: "\n"))
    }

    /// The port the named stage logged in its `listening` line.
    func listeningPort(stage: String) throws -> UInt16 {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            for line in logs("listening") where line["stage"] as? String == stage {
                if let address = line["address"] as? String,
                    let port = address.split(separator: ":").last.flatMap({ UInt16($0) })
                {
                    return port
                }
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("no listening line for stage '\(stage)'; stderr:\n" + logLines.joined(separator: "\n"))
    }

    /// With ``StandardOutput/heldPipe``: starts reading standard output to its end.
    func startDrainingStdout() {
        stdoutReader.withLock { $0 = PipeReader(stdoutPipe) }
    }

    /// With ``StandardOutput/heldPipe``: the lines of standard output, once routerd has closed it.
    func stdoutLines(timeout: Double = 30) -> [String] {
        let text = stdoutReader.withLock { $0 }?.readToEnd(timeout: timeout) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Sends SIGTERM and waits for the exit status (or fails after `timeout` seconds, killing it).
    func terminate(timeout: Double = 30) throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return try waitForExit(timeout: timeout)
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Double = 30) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestFailure("routerd did not exit within \(timeout)s")
        }
        process.waitUntilExit()
        // Let the stderr reader take the last lines.
        usleep(50_000)
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Collects text arriving in pieces and splits it into lines.
final class LineSink: Sendable {
    private let state = Mutex<(lines: [String], partial: String)>(([], ""))

    func append(_ text: String) {
        state.withLock { state in
            let pieces = (state.partial + text).split(separator: "\n", omittingEmptySubsequences: false)
            state.lines.append(contentsOf: pieces.dropLast().map(String.init))
            state.partial = pieces.last.map(String.init) ?? ""
        }
    }

    var completeLines: [String] {
        state.withLock { $0.lines.filter { !$0.isEmpty } }
    }
}

/// A failed expectation outside `#expect`, with a message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A command's result.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `routerd` with arguments to completion.
func runRouterd(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws
    -> CommandResult
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestPaths.binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = input
    try process.run()
    let outReader = PipeReader(out)
    let errReader = PipeReader(err)
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: outReader.readToEnd(), stderr: errReader.readToEnd())
}
