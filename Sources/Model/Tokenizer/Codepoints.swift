/// Unicode helpers for the pre-tokenizers, matching llama.cpp's `unicode.cpp` where it matters.

/// The character classes the pre-tokenizer regexes use. `defined` is set for every real code
/// point (llama.cpp's `flags.as_uint() != 0`) and clear past the end of a segment.
struct CodepointFlags: OptionSet, Sendable {
    let rawValue: UInt8
    static let defined = CodepointFlags(rawValue: 1)
    static let whitespace = CodepointFlags(rawValue: 2)  // \s: the White_Space property
    static let letter = CodepointFlags(rawValue: 4)      // \p{L}
    static let number = CodepointFlags(rawValue: 8)      // \p{N}
    static let punctuation = CodepointFlags(rawValue: 16)  // \p{P}

    static let wordLike: CodepointFlags = [.whitespace, .letter, .number]

    private static let ascii: [CodepointFlags] = (0 ..< 128).map { compute(UInt32($0)) }

    @inline(__always)
    static func of(_ cpt: UInt32) -> CodepointFlags {
        cpt < 128 ? ascii[Int(cpt)] : compute(cpt)
    }

    private static func compute(_ cpt: UInt32) -> CodepointFlags {
        guard cpt < 0x11_0000 else { return [] }
        // Surrogates (only from invalid UTF-8 input) are category Cs: defined, nothing else.
        guard let scalar = Unicode.Scalar(cpt) else { return .defined }
        var flags: CodepointFlags = .defined
        if scalar.properties.isWhitespace { flags.insert(.whitespace) }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            flags.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            flags.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            flags.insert(.punctuation)
        default:
            break
        }
        return flags
    }
}

enum Codepoints {
    static let replacement: UInt32 = 0xFFFD

    /// Decodes UTF-8 the way llama.cpp does (`unicode_cpts_from_utf8`): a lead byte without its
    /// continuation bytes, or a stray continuation byte, becomes one U+FFFD and decoding goes on at
    /// the next byte. Like llama.cpp it accepts overlong forms and surrogates; unlike it, a 4-byte
    /// form above U+10FFFF becomes U+FFFD (llama.cpp would throw re-encoding it).
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(bytes.count)
        let n = bytes.count
        var i = 0
        @inline(__always) func cont(_ j: Int) -> Bool { j < n && bytes[j] & 0xC0 == 0x80 }
        while i < n {
            let b0 = UInt32(bytes[i])
            if b0 & 0x80 == 0 {
                out.append(b0); i += 1
            } else if b0 & 0x40 == 0 {
                out.append(replacement); i += 1
            } else if b0 & 0x20 == 0 {
                guard cont(i + 1) else { out.append(replacement); i += 1; continue }
                out.append((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)); i += 2
            } else if b0 & 0x10 == 0 {
                guard cont(i + 1), cont(i + 2) else { out.append(replacement); i += 1; continue }
                out.append((b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)); i += 3
            } else if b0 & 0x08 == 0 {
                guard cont(i + 1), cont(i + 2), cont(i + 3) else { out.append(replacement); i += 1; continue }
                let c = (b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
                    | UInt32(bytes[i + 3] & 0x3F)
                out.append(c <= 0x10_FFFF ? c : replacement); i += 4
            } else {
                out.append(replacement); i += 1
            }
        }
        return out
    }

    /// Appends the UTF-8 form of `cpt` (surrogates too, as llama.cpp does).
    @inline(__always)
    static func appendUTF8(_ cpt: UInt32, to out: inout [UInt8]) {
        switch cpt {
        case 0 ..< 0x80:
            out.append(UInt8(cpt))
        case 0x80 ..< 0x800:
            out.append(UInt8(0xC0 | (cpt >> 6)))
            out.append(UInt8(0x80 | (cpt & 0x3F)))
        case 0x800 ..< 0x1_0000:
            out.append(UInt8(0xE0 | (cpt >> 12)))
            out.append(UInt8(0x80 | ((cpt >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cpt & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (cpt >> 18)))
            out.append(UInt8(0x80 | ((cpt >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((cpt >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cpt & 0x3F)))
        }
    }

    /// Length of the UTF-8 sequence a byte starts, by its high nibble (llama.cpp's
    /// `unicode_len_utf8`): continuation bytes count as 1.
    @inline(__always)
    static func sequenceLength(lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: 2
        case 0xE: 3
        case 0xF: 4
        default: 1
        }
    }
}
