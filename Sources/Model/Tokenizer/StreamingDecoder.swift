/// Turns a stream of token ids into text without ever emitting half a UTF-8 character.
///
/// A token may end inside a character (byte tokens `<0xF0>`, or byte-level BPE pieces of an
/// emoji); those bytes are held until the character is complete. Bytes that can no longer become
/// a valid character are emitted as U+FFFD straight away, and an incomplete tail at `flush()`.
/// The outputs joined equal `String(decoding:)` of all the tokens' bytes, which is
/// `Tokenizer.decode` except for its first-token space drop and space clean-up.
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public let includeSpecial: Bool
    /// Bytes of a character still incomplete (at most 3).
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, includeSpecial: Bool = true) {
        self.tokenizer = tokenizer
        self.includeSpecial = includeSpecial
    }

    /// The text that token `id` completes (may be empty while a character is incomplete).
    public mutating func append(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.tokenBytes(id, includeSpecial: includeSpecial))
        let keep = Self.incompleteTailLength(pending)
        guard keep < pending.count else { return "" }
        let text = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Whatever is held back, with an incomplete character as U+FFFD; the decoder is then empty.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many bytes at the end of `bytes` are the start of a character that more bytes could
    /// still complete: a lead byte followed by fewer continuation bytes than it needs, each in
    /// the range UTF-8 allows at its place (no overlong forms, surrogates or values past U+10FFFF).
    static func incompleteTailLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        for back in 1 ... min(3, n) {
            let lead = bytes[n - back]
            if lead & 0xC0 == 0x80 { continue }  // continuation byte: look further back
            let need: Int
            var secondRange: ClosedRange<UInt8> = 0x80 ... 0xBF
            switch lead {
            case 0xC2 ... 0xDF: need = 2
            case 0xE0: need = 3; secondRange = 0xA0 ... 0xBF
            case 0xED: need = 3; secondRange = 0x80 ... 0x9F
            case 0xE1 ... 0xEF: need = 3
            case 0xF0: need = 4; secondRange = 0x90 ... 0xBF
            case 0xF4: need = 4; secondRange = 0x80 ... 0x8F
            case 0xF1 ... 0xF3: need = 4
            default: return 0
            }
            guard back < need else { return 0 }  // complete (or too long: not ours to hold)
            if back >= 2 && !secondRange.contains(bytes[n - back + 1]) { return 0 }
            return back
        }
        return 0
    }
}
