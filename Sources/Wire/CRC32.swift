/// CRC-32 as IEEE 802.3 and zlib define it (reflected polynomial 0xEDB88320, initial value and
/// final xor 0xFFFFFFFF): the checksum of "123456789" is 0xCBF43926.
///
/// Slicing-by-8: eight tables let each step consume eight bytes with eight independent lookups
/// instead of eight dependent ones, fast enough for a 16 MiB weight chunk per frame.
public enum CRC32 {
    /// The CRC-32 of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The CRC-32 of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let n = bytes.count
        let crc: UInt32 = tables.withUnsafeBufferPointer { t in
            var crc: UInt32 = 0xFFFF_FFFF
            var i = 0
            while n - i >= 8 {
                let lo = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ crc
                let hi = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                crc = t[7 << 8 | Int(lo & 0xFF)] ^ t[6 << 8 | Int(lo >> 8 & 0xFF)]
                    ^ t[5 << 8 | Int(lo >> 16 & 0xFF)] ^ t[4 << 8 | Int(lo >> 24)]
                    ^ t[3 << 8 | Int(hi & 0xFF)] ^ t[2 << 8 | Int(hi >> 8 & 0xFF)]
                    ^ t[1 << 8 | Int(hi >> 16 & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
            return crc
        }
        return ~crc
    }

    /// Table k (at k × 256) maps a byte to its contribution k bytes further on; table 0 is the
    /// classic byte-at-a-time table. Built once, on first use.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0 ..< 256 {
            var c = UInt32(i)
            for _ in 0 ..< 8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1 ..< 8 {
            for i in 0 ..< 256 {
                let previous = t[(k - 1) << 8 | i]
                t[k << 8 | i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()
}
