/// Reads little-endian fields from a frame body, throwing instead of reading past the end.
///
/// Every length and count is checked against its limit and then against the bytes left
/// *before* anything is allocated, so a hostile count (0xFFFFFFFF entries) costs nothing.
/// Field names are autoclosures: the strings are only built when an error is thrown.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    /// Throws unless `n` more bytes are there.
    func need(_ n: Int, _ field: @autoclosure () -> String) throws(WireError) {
        guard n <= remaining else { throw .truncated(field: field(), needed: n, available: remaining) }
    }

    mutating func u8(_ field: @autoclosure () -> String) throws(WireError) -> UInt8 {
        try need(1, field())
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16(_ field: @autoclosure () -> String) throws(WireError) -> UInt16 {
        try need(2, field())
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    mutating func u32(_ field: @autoclosure () -> String) throws(WireError) -> UInt32 {
        try need(4, field())
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func u64(_ field: @autoclosure () -> String) throws(WireError) -> UInt64 {
        try need(8, field())
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// One byte, 0 or 1; anything else is an error rather than "true", so every value has
    /// exactly one encoding.
    mutating func bool(_ field: @autoclosure () -> String) throws(WireError) -> Bool {
        switch try u8(field()) {
        case 0: return false
        case 1: return true
        case let v: throw .invalidValue(field: field(), reason: "\(v) is not a bool (0 or 1)")
        }
    }

    /// An enum stored as its raw value; an unknown raw value is an error.
    mutating func enumeration<E: RawRepresentable>(_: E.Type, _ field: @autoclosure () -> String) throws(WireError) -> E
        where E.RawValue == UInt8 {
        let raw = try u8(field())
        guard let value = E(rawValue: raw) else { throw .invalidValue(field: field(), reason: "unknown value \(raw)") }
        return value
    }

    /// A count prefix, checked against `limit` and against the bytes left, at
    /// `minimumElementBytes` per element, so the caller may then reserve that many.
    mutating func count(_ prefix: LengthPrefix, limit: Int, minimumElementBytes: Int,
                        _ field: @autoclosure () -> String) throws(WireError) -> Int {
        let n = try length(prefix, field())
        guard n <= limit else { throw .limitExceeded(field: field(), value: n, limit: limit) }
        try need(n * minimumElementBytes, field())
        return n
    }

    /// A u16 byte length, checked against `limit` and the bytes left, then UTF-8 that must be
    /// valid.
    mutating func string(limit: Int, _ field: @autoclosure () -> String) throws(WireError) -> String {
        let raw = try rawBytes(.u16, limit: limit, field())
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw .invalidValue(field: field(), reason: "invalid UTF-8")
        }
        return s
    }

    /// A length prefix and that many bytes, checked against `limit` and the bytes left.
    mutating func byteArray(_ prefix: LengthPrefix, limit: Int, _ field: @autoclosure () -> String) throws(WireError) -> [UInt8] {
        Array(try rawBytes(prefix, limit: limit, field()))
    }

    /// A length prefix and a view of that many bytes of the frame, not copied: the caller can
    /// check them (size, checksum) before allocating.
    mutating func rawBytes(_ prefix: LengthPrefix, limit: Int, _ field: @autoclosure () -> String) throws(WireError) -> UnsafeRawBufferPointer {
        let n = try length(prefix, field())
        guard n <= limit else { throw .limitExceeded(field: field(), value: n, limit: limit) }
        return try take(n, field())
    }

    /// A length prefix that must state exactly 0 or `size`, e.g. a key that is absent or whole.
    mutating func fixedBytes(_ prefix: LengthPrefix, sizes: [Int], _ field: @autoclosure () -> String) throws(WireError) -> [UInt8] {
        let n = try length(prefix, field())
        guard sizes.contains(n) else {
            let allowed = sizes.map(String.init).joined(separator: " or ")
            throw .invalidValue(field: field(), reason: "\(n) bytes, must be \(allowed)")
        }
        return Array(try take(n, field()))
    }

    /// The next `n` bytes, in place.
    mutating func take(_ n: Int, _ field: @autoclosure () -> String) throws(WireError) -> UnsafeRawBufferPointer {
        try need(n, field())
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n])
    }

    private mutating func length(_ prefix: LengthPrefix, _ field: @autoclosure () -> String) throws(WireError) -> Int {
        switch prefix {
        case .u8: Int(try u8(field()))
        case .u16: Int(try u16(field()))
        case .u32: Int(try u32(field()))
        }
    }
}
