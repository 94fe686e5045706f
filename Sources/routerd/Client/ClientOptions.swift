import ArgumentParser
import Foundation
import Router
import RouterSupport

/// Where `routerd send` and `routerd loadtest` send, and what they put in each entry's `host` field.
struct TargetOptions: ParsableArguments {
    @Option(help: "Address of the routerd to send to (a name or an IPv4/IPv6 literal; IPv4 is preferred).")
    var host: String = "127.0.0.1"

    @Option(help: "UDP port of routerd; SERVER_PORT in the environment sets the default.")
    var port: Int = ClientEnvironment.integer("SERVER_PORT", default: 5514)

    @Option(
        name: .customLong("host-name"),
        help: "The `host` field of generated entries (default: this machine's host name).")
    var hostName: String?

    @Option(
        help: ArgumentHelp(
            "SO_SNDBUF of the sending socket, in bytes or with a unit (1MiB); SNDBUF_SIZE sets the default.",
            valueName: "size"))
    var sndbuf: ByteSize = ByteSize(bytes: ClientEnvironment.integer("SNDBUF_SIZE", default: 1_048_576))

    /// The host field to write.
    var entryHostName: String {
        hostName ?? machineHostName()
    }

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535, not \(port)") }
    }
}

/// Defaults read from the environment, as the seed's client reads them.
enum ClientEnvironment {
    /// The integer in environment variable `name`, or `fallback` when it is unset or not an integer.
    static func integer(_ name: String, default fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            ?? fallback
    }
}

/// A byte count on the command line: `1MiB`, `100MB`, `65536`.
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    var bytes: Int

    init(bytes: Int) {
        self.bytes = bytes
    }

    init?(argument: String) {
        guard case .success(let bytes) = Units.parseSize(argument) else { return nil }
        self.bytes = bytes
    }

    var description: String { String(bytes) }

    var defaultValueDescription: String { String(bytes) }
}

/// A duration on the command line, with a unit: `500ms`, `2s`, `1m`.
struct DurationArgument: ExpressibleByArgument, CustomStringConvertible {
    var duration: Duration

    init(_ duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        guard case .success(let duration) = Units.parseDuration(argument) else { return nil }
        self.duration = duration
    }

    var nanoseconds: Int64 { duration.nanoseconds }

    var description: String { Units.formatDuration(duration) }

    var defaultValueDescription: String { description }
}
