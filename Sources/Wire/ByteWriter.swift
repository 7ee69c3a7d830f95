/// Appends little-endian fields to a growing frame. Every multi-byte value is written byte by
/// byte in wire order, so the encoding never depends on the host's layout.
///
/// Writing never fails. A field too long for its length prefix (a string over 65535 bytes, a
/// list over its prefix's maximum) is cut to the prefix's maximum, which is still over that
/// field's limit, so the peer refuses it with a named error instead of reading garbage.
struct ByteWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var byteCount: Int { bytes.count }

    /// Bytes as they are (the magic).
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }

    mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v))
        bytes.append(UInt8(truncatingIfNeeded: v &>> 8))
    }

    mutating func u32(_ v: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v &>> UInt32(shift))) }
    }

    mutating func u64(_ v: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v &>> UInt64(shift))) }
    }

    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    /// Overwrites four bytes already written (the header's body length, known only at the end).
    mutating func patchU32(_ v: UInt32, at offset: Int) {
        for i in 0 ..< 4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v &>> UInt32(8 * i)) }
    }

    /// A list count in a prefix of `width`, clamped to the prefix's maximum; returns how many
    /// elements the caller must then write.
    mutating func lengthPrefix(_ n: Int, _ width: LengthPrefix) -> Int {
        let written = min(n, width.max)
        switch width {
        case .u8: u8(UInt8(written))
        case .u16: u16(UInt16(written))
        case .u32: u32(UInt32(written))
        }
        return written
    }

    /// A u16 byte length and the UTF-8 bytes.
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            let n = lengthPrefix(utf8.count, .u16)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[..<n]))
        }
    }

    /// A length in a prefix of `width` and the bytes.
    mutating func byteArray(_ b: [UInt8], _ width: LengthPrefix) {
        let n = lengthPrefix(b.count, width)
        if n == b.count { bytes.append(contentsOf: b) } else { bytes.append(contentsOf: b[..<n]) }
    }
}
