#if canImport(Glibc)
    import Glibc
#endif

/// The process's own resource use, read from /proc at scrape time (Linux; zeros elsewhere).
struct ProcessStats {
    /// Resident set size (VmRSS).
    var residentBytes: Int
    /// Virtual memory size (VmSize).
    var virtualBytes: Int
    /// User plus system CPU time.
    var cpuSeconds: Double
    /// Open file descriptors.
    var openFileDescriptors: Int
    /// When the process started, in seconds since the Unix epoch.
    var startTimeSeconds: Double

    static func read() -> ProcessStats {
        var stats = ProcessStats(
            residentBytes: 0, virtualBytes: 0, cpuSeconds: 0, openFileDescriptors: 0, startTimeSeconds: 0)
        if let status = readSmallFile("/proc/self/status") {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("VmRSS:") { stats.residentBytes = kilobytes(line) * 1024 }
                if line.hasPrefix("VmSize:") { stats.virtualBytes = kilobytes(line) * 1024 }
            }
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if ticks > 0, let stat = readSmallFile("/proc/self/stat"), let closing = stat.lastIndex(of: ")") {
            // Fields after the command name, which may itself hold spaces and parentheses: state is field 3.
            let fields = stat[stat.index(after: closing)...].split(separator: " ")
            if fields.count > 19, let user = Double(fields[11]), let system = Double(fields[12]),
                let started = Double(fields[19])
            {
                stats.cpuSeconds = (user + system) / ticks
                if let boot = bootTimeSeconds() { stats.startTimeSeconds = boot + started / ticks }
            }
        }
        stats.openFileDescriptors = countOpenFileDescriptors()
        return stats
    }

    private static func kilobytes(_ line: Substring) -> Int {
        line.split(separator: " ", omittingEmptySubsequences: true).lazy.compactMap { Int($0) }.first ?? 0
    }

    private static func bootTimeSeconds() -> Double? {
        guard let stat = readSmallFile("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingPrefix(" "))
        }
        return nil
    }

    private static func countOpenFileDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        // The directory stream's own descriptor is not one of ours.
        return max(0, count - 1)
    }

    /// A /proc file's text (they report a size of 0, so read until the end).
    private static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
