import ArgumentParser
import Foundation
import Router
import RouterRuntime
import RouterSupport

/// `routerd buffer`: looks at disk buffers without starting anything.
struct BufferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "buffer", abstract: "Look at an output's disk buffer without starting anything.",
        subcommands: [InspectCommand.self])

    struct InspectCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect",
            abstract: "Print what a disk buffer holds: size, entries, oldest and newest, damaged records.",
            discussion: """
                Reads every segment and checks every record's checksum, changing nothing (a torn tail is reported, \
                and cut only when routerd opens the buffer). Works while a routerd uses the buffer; the figures are \
                then a moment's. Exits 0, or 1 when the buffer cannot be read.
                """)

        @Argument(
            help: ArgumentHelp(
                "The buffer's directory (buffer.path, or <router.data_dir>/<output name>).", valueName: "path"))
        var path: String

        @Flag(name: .long, help: "Print one JSON object.")
        var json = false

        func run() throws {
            let buffer: DiskBuffer
            do {
                buffer = try DiskBuffer(
                    directory: path, settings: BufferSettings(kind: .disk, maxSize: Int.max / 2), readOnly: true)
            } catch {
                printError("routerd buffer inspect: \(error)")
                throw ExitCode(1)
            }
            let report = buffer.snapshot
            let user = DiskBuffer.lockHolder(directory: path)
            print(json ? Self.json(report, user: user) : Self.text(report, user: user))
        }

        static func time(_ nanos: Int64?) -> String {
            guard let nanos else { return "-" }
            let age = Double(max(0, wallClockNanos() - nanos)) / 1e9
            return
                "\(Timestamp.iso8601(nanos: nanos, digits: 3)) (\(Units.formatDuration(.milliseconds(Int(age * 1000)))) ago)"
        }

        static func text(_ report: DiskBufferReport, user: String?) -> String {
            let damage = report.damage
            var lines = [
                "buffer:   \(report.path)",
                "in use:   \(user.map { "by routerd pid \($0)" } ?? "no")",
                "size:     \(Units.formatSize(report.bytes)) in \(report.segments) segment(s)",
                "entries:  \(report.events) in \(report.records) record(s), not yet written by the output",
                "oldest:   \(time(report.oldestNanos))",
                "newest:   \(time(report.newestNanos))",
            ]
            if damage == DiskBufferReport.Damage() {
                lines.append("damage:   none")
            } else {
                lines.append(
                    "damage:   \(damage.cutRecords) torn record(s) at the end (\(damage.cutBytes) bytes, cut at the "
                        + "next start); \(damage.skippedRecords) damaged stretch(es) skipped (\(damage.skippedBytes) "
                        + "bytes, \(damage.lostEvents) entries lost)")
            }
            if report.replayedEvents > 0 {
                lines.append(
                    "replay:   \(report.replayedEvents) entries were handed to the output before without a settlement "
                        + "on record: they are delivered again and may arrive twice")
            }
            return lines.joined(separator: "\n")
        }

        static func json(_ report: DiskBufferReport, user: String?) -> String {
            let damage = report.damage
            let fields: [(String, String)] = [
                ("path", JSONText.quoted(report.path)),
                ("in_use_by_pid", user.map { JSONText.quoted($0) } ?? "null"),
                ("bytes", String(report.bytes)), ("segments", String(report.segments)),
                ("events", String(report.events)), ("records", String(report.records)),
                (
                    "oldest",
                    report.oldestNanos.map { JSONText.quoted(Timestamp.iso8601(nanos: $0, digits: 3)) } ?? "null"
                ),
                (
                    "newest",
                    report.newestNanos.map { JSONText.quoted(Timestamp.iso8601(nanos: $0, digits: 3)) } ?? "null"
                ),
                ("records_torn", String(damage.cutRecords)), ("bytes_torn", String(damage.cutBytes)),
                ("records_skipped", String(damage.skippedRecords)), ("bytes_skipped", String(damage.skippedBytes)),
                ("events_lost", String(damage.lostEvents)), ("events_replayed", String(report.replayedEvents)),
            ]
            return "{" + fields.map { "\(JSONText.quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        }
    }
}
