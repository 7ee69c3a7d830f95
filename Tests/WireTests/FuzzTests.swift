import StrataWire
import Testing
import TestSupport

/// 100,000 seeded frames: half random bodies behind a valid header, half mutations of valid
/// encodings of every kind. Decoding must never crash; every outcome is a message or a
/// `WireError` (the typed throw guarantees the latter); and every message that decodes is
/// canonical: it re-encodes to a frame that decodes to itself, byte for byte the frame it came
/// from when nothing version- or code-dependent was involved.
@Suite struct FuzzTests {
    private static let frames = Samples.all.map { $0.encoded() }
    private static let extremes: [UInt32] = [0, 1, 2, 31, 32, 33, 64, 255, 256, 4096, 4097, 65535, 65536, 0x7FFF_FFFF, 0xFFFF_FFFF]

    @Test func randomFrames() {
        var rng = SplitMix64(seed: 0x57_7A_7A)
        var decoded = 0
        var errors: [String: Int] = [:]
        var kinds: [MessageKind: Int] = [:]

        for i in 0 ..< 100_000 {
            let input = i % 2 == 0 ? randomFrame(&rng) : mutatedFrame(&rng)
            do {
                let message = try WireMessage.decode(input)
                decoded += 1
                kinds[message.kind, default: 0] += 1
                checkCanonical(message, input)
            } catch {
                errors[caseName(error), default: 0] += 1
            }
        }
        // Both halves reach the body readers: some frames decode and many different checks fire.
        #expect(decoded > 100)
        #expect(errors.count == 9, "\(errors)")
        #expect(kinds.count == MessageKind.allCases.count, "\(kinds)")
    }

    /// A valid header (any kind byte, mostly known ones) and a random body of the declared length.
    private func randomFrame(_ rng: inout SplitMix64) -> [UInt8] {
        let kinds = MessageKind.allCases
        let kind = rng.below(16) == 0 ? rng.byte() : kinds[rng.below(kinds.count)].rawValue
        let length = rng.below(4) == 0 ? rng.below(600) : rng.below(48)
        var body = rng.bytes(length)
        // Small counts and lengths in the first bytes make deeper parses likelier.
        for j in 0 ..< min(length, 12) where rng.below(3) == 0 { body[j] = UInt8(rng.below(4)) }
        return frame(kind: kind, body: body)
    }

    /// A valid encoding with one to four mutations.
    private func mutatedFrame(_ rng: inout SplitMix64) -> [UInt8] {
        var f = Self.frames[rng.below(Self.frames.count)]
        for _ in 0 ... rng.below(4) {
            let at = f.isEmpty ? 0 : rng.below(f.count)
            switch rng.below(7) {
            case 0 where !f.isEmpty:  // bit flip
                f[at] ^= 1 << UInt8(rng.below(8))
            case 1 where !f.isEmpty:  // byte replaced
                f[at] = rng.byte()
            case 2:  // truncation, with the length fixed half the time
                f = Array(f[..<at])
                if f.count >= Wire.headerBytes, rng.below(2) == 0 { f = fixLength(f) }
            case 3:  // insertion, with the length fixed half the time
                f.insert(contentsOf: rng.bytes(1 + rng.below(8)), at: at)
                if f.count >= Wire.headerBytes, rng.below(2) == 0 { f = fixLength(f) }
            case 4 where f.count >= Wire.headerBytes:  // length field corrupted
                let declared = UInt32(f.count - Wire.headerBytes)
                let v: UInt32 = switch rng.below(3) {
                case 0: declared &+ 1
                case 1: declared &- 1
                default: Self.extremes[rng.below(Self.extremes.count)]
                }
                put32(v, in: &f, at: 8)
            case 5 where f.count >= Wire.headerBytes + 4:  // an extreme count or length over a body field
                let v = Self.extremes[rng.below(Self.extremes.count)]
                let o = Wire.headerBytes + rng.below(f.count - Wire.headerBytes - 3)
                if rng.below(2) == 0 { put32(v, in: &f, at: o) } else { f[o] = UInt8(truncatingIfNeeded: v); f[o + 1] = UInt8(truncatingIfNeeded: v >> 8) }
            default:  // a body byte replaced by a small value (counts, bools, enums)
                if f.count > Wire.headerBytes { f[Wire.headerBytes + rng.below(f.count - Wire.headerBytes)] = UInt8(rng.below(3)) }
            }
        }
        return f
    }

    private func caseName(_ error: WireError) -> String {
        switch error {
        case .truncated: "truncated"
        case .badMagic: "badMagic"
        case .unsupportedVersion: "unsupportedVersion"
        case .unknownKind: "unknownKind"
        case .frameLength: "frameLength"
        case .limitExceeded: "limitExceeded"
        case .invalidValue: "invalidValue"
        case .checksumMismatch: "checksumMismatch"
        case .trailingBytes: "trailingBytes"
        }
    }

    private func checkCanonical(_ message: WireMessage, _ input: [UInt8]) {
        let again = message.encoded()
        #expect((try? WireMessage.decode(again)) == message, "\(message.kind) does not survive re-encoding")
        // An error frame of another version, or with a code this build reads as `.other`,
        // re-encodes differently; everything else has exactly one encoding.
        if case let .error(e) = message, e.code == .other || input[4] != UInt8(Wire.protocolVersion) || input[5] != 0 { return }
        #expect(again == input, "\(message.kind) re-encodes to different bytes")
    }
}
