/// UTF-8 validation shared by the entry scanner and the `verify` filter's Python-exact JSON writer.
package enum UTF8Scan {
    /// Length of the valid UTF-8 sequence starting with the non-ASCII byte at `i`, or 0 when it is invalid
    /// (overlong, surrogate, above U+10FFFF, stray continuation byte or truncated).
    @inlinable @inline(__always)
    package static func sequenceLength(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: Int) -> Int {
        let c = p[i]
        if c < 0xC2 { return 0 }
        if c < 0xE0 {
            guard i &+ 1 < n, p[i &+ 1] & 0xC0 == 0x80 else { return 0 }
            return 2
        }
        if c < 0xF0 {
            guard i &+ 2 < n else { return 0 }
            let b1 = p[i &+ 1]
            let lower: UInt8 = c == 0xE0 ? 0xA0 : 0x80
            let upper: UInt8 = c == 0xED ? 0x9F : 0xBF
            guard b1 >= lower, b1 <= upper, p[i &+ 2] & 0xC0 == 0x80 else { return 0 }
            return 3
        }
        if c < 0xF5 {
            guard i &+ 3 < n else { return 0 }
            let b1 = p[i &+ 1]
            let lower: UInt8 = c == 0xF0 ? 0x90 : 0x80
            let upper: UInt8 = c == 0xF4 ? 0x8F : 0xBF
            guard b1 >= lower, b1 <= upper, p[i &+ 2] & 0xC0 == 0x80, p[i &+ 3] & 0xC0 == 0x80 else { return 0 }
            return 4
        }
        return 0
    }
}
