#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writing whole buffers to file descriptors, and turning batches into lines.
public enum FileDescriptorWriter {
    /// Writes every byte (looping over short writes and EINTR); returns nil or the errno of the failure.
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return nil }
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += written
        }
        return nil
    }

    /// Writes every byte of `bytes`; returns nil or the errno of the failure.
    public static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBytes { writeAll(descriptor, $0) }
    }

    /// The text of an errno value.
    public static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}

extension Batch {
    /// Appends each event's bytes and a newline to `buffer`: the entries as they arrived, one line each.
    public func appendLines(to buffer: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { all in
            for event in events {
                buffer.append(
                    contentsOf: UnsafeBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)]))
                buffer.append(0x0A)
            }
        }
    }

    /// Bytes ``appendLines(to:)`` would append.
    public var lineBytes: Int {
        events.reduce(0) { $0 + Int($1.count) + 1 }
    }
}
