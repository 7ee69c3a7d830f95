/// Why a frame could not be decoded. Every case names what was wrong in terms a peer's operator
/// can act on; ``reply`` turns it into the error frame sent back, so a bad frame is never met
/// with silence.
///
/// Field names are paths into the message, e.g. `hello.peerID`, `forward.entries.count`,
/// `hello.models[1].name`.
public enum WireError: Error, Equatable, CustomStringConvertible {
    /// The frame or body ended inside `field`: it needed `needed` bytes, `available` were left.
    case truncated(field: String, needed: Int, available: Int)
    /// The frame does not start with ``Wire/magic``.
    case badMagic
    /// The header's protocol version is not ``Wire/protocolVersion``.
    case unsupportedVersion(UInt16)
    /// The header's kind byte names no ``MessageKind``.
    case unknownKind(UInt8)
    /// The frame's size is not the header size plus the body length the header declares.
    case frameLength(declared: Int, actual: Int)
    /// A length, count or value is over its limit (see ``Wire/Limits``).
    case limitExceeded(field: String, value: Int, limit: Int)
    /// A value that is not allowed: an unknown enum raw value, a bool other than 0/1, invalid
    /// UTF-8, nonzero flags, inconsistent fields.
    case invalidValue(field: String, reason: String)
    /// A weight chunk's data does not match its CRC-32: `expected` is the CRC the frame
    /// carries, `got` the CRC of the data received.
    case checksumMismatch(expected: UInt32, got: UInt32)
    /// The body has this many bytes after the end of the message.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case let .truncated(field, needed, available):
            "\(field): truncated, needs \(needed) bytes but only \(available) remain"
        case .badMagic:
            "not a Strata frame: it does not start with the magic \"STRA\""
        case let .unsupportedVersion(version):
            "protocol version \(version) is not supported; this peer speaks \(Wire.protocolVersion)"
        case let .unknownKind(kind):
            "unknown message kind \(kind)"
        case let .frameLength(declared, actual):
            "the header declares a frame of \(declared) bytes but the frame is \(actual) bytes"
        case let .limitExceeded(field, value, limit):
            "\(field): \(value) \(Self.unit(of: field)) exceeds the limit of \(limit)"
        case let .invalidValue(field, reason):
            "\(field): \(reason)"
        case let .checksumMismatch(expected, got):
            "weightChunk.data: CRC-32 is \(Self.hex(got)) but the chunk says \(Self.hex(expected))"
        case let .trailingBytes(count):
            "\(count) unexpected bytes after the end of the message"
        }
    }

    /// The error message to send back to the peer whose frame this was: `.unsupportedVersion`,
    /// `.unknownKind`, or `.malformed` for everything else, with ``description`` as the text.
    public var reply: WireErrorMessage {
        let code: WireErrorMessage.Code = switch self {
        case .unsupportedVersion: .unsupportedVersion
        case .unknownKind: .unknownKind
        default: .malformed
        }
        return WireErrorMessage(code: code, message: description)
    }

    /// What a limited field counts: list counts are entries, `rows` rows, `dim` values, the rest
    /// (strings, byte arrays, frames) bytes.
    private static func unit(of field: String) -> String {
        if field.hasSuffix(".count") { return "entries" }
        if field.hasSuffix(".rows") { return "rows" }
        if field.hasSuffix(".dim") { return "values" }
        return "bytes"
    }

    private static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
