import StrataWire
import Testing
import TestSupport

@Suite struct ActivationCodecTests {
    /// Values spread over many magnitudes, both signs, and zeros.
    private func sampleValues(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< n).map { i in
            if i % 97 == 0 { return 0 }
            let magnitude = Float(rng.next() % 1_000_000) / 1_000_000 * Float(1 << (rng.below(16)))
            return rng.below(2) == 0 ? magnitude : -magnitude
        }
    }

    private func decode(_ bytes: [UInt8], _ type: ActivationType, _ count: Int) -> [Float] {
        (try? ActivationCodec.decode(bytes, as: type, count: count)) ?? []
    }

    @Test func byteCounts() {
        #expect(ActivationCodec.byteCount(values: 10, type: .f32) == 40)
        #expect(ActivationCodec.byteCount(values: 10, type: .f16) == 20)
        #expect(ActivationCodec.byteCount(values: 10, type: .bf16) == 20)
        #expect(ActivationCodec.byteCount(values: 64, type: .q8_0) == 68)
        #expect(ActivationCodec.byteCount(values: 0, type: .q8_0) == 0)
        #expect(ActivationCodec.byteCount(values: 33, type: .q8_0) == nil)
        #expect(ActivationCodec.byteCount(values: -1, type: .f32) == nil)
        #expect(ActivationCodec.byteCount(values: .max, type: .f32) == nil)
    }

    /// f32 is bit-exact, NaN payloads, signed zeros and subnormals included.
    @Test func f32IsBitExact() throws {
        var rng = SplitMix64(seed: 1)
        let values = (0 ..< 10_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
            + [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, Float(bitPattern: 0x7F80_0001)]
        let bytes = ActivationCodec.encode(values, as: .f32)
        #expect(bytes.count == values.count * 4)
        #expect(Array(bytes[bytes.count - 4 ..< bytes.count]) == [0x01, 0x00, 0x80, 0x7F])
        let back = try ActivationCodec.decode(bytes, as: .f32, count: values.count)
        #expect(back.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test func f16Bounds() throws {
        let values = sampleValues(4096, seed: 2)
        let back = try ActivationCodec.decode(ActivationCodec.encode(values, as: .f16), as: .f16, count: values.count)
        for (x, y) in zip(values, back) {
            // Half precision: 11 significant bits, so relative error ≤ 2^-11 (normal range).
            #expect(abs(x - y) <= abs(x) * 0x1p-11, "\(x) → \(y)")
        }
        // Round to nearest even, overflow to infinity, subnormals, NaN.
        let special: [Float] = [1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519, 65520, -1e6, 0x1p-24, 0x1p-25, 0x1p-26, .nan, -0.0]
        let decoded = try ActivationCodec.decode(ActivationCodec.encode(special, as: .f16), as: .f16, count: special.count)
        #expect(decoded[0] == 1)
        #expect(decoded[1] == 1 + 4 * 0x1p-11)
        #expect(decoded[2] == 65504 && decoded[3] == 65504)
        #expect(decoded[4] == .infinity && decoded[5] == -.infinity)
        #expect(decoded[6] == 0x1p-24 && decoded[7] == 0 && decoded[8] == 0)
        #expect(decoded[9].isNaN)
        #expect(decoded[10] == 0 && decoded[10].sign == .minus)
    }

    @Test func bf16Bounds() throws {
        let values = sampleValues(4096, seed: 3)
        let back = try ActivationCodec.decode(ActivationCodec.encode(values, as: .bf16), as: .bf16, count: values.count)
        for (x, y) in zip(values, back) {
            // 8 significant bits: relative error ≤ 2^-8.
            #expect(abs(x - y) <= abs(x) * 0x1p-8, "\(x) → \(y)")
        }
        let special: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .greatestFiniteMagnitude, .nan, Float(bitPattern: 0x7F80_0001), .infinity, 3]
        let bytes = ActivationCodec.encode(special, as: .bf16)
        let decoded = try ActivationCodec.decode(bytes, as: .bf16, count: special.count)
        #expect(decoded[0] == 1)                 // halfway, to even
        #expect(decoded[1] == 1 + 4 * 0x1p-8)    // halfway, to even (up)
        #expect(decoded[2] == .infinity)         // rounds past the largest bf16
        #expect(decoded[3].isNaN && decoded[4].isNaN)  // a NaN with only low payload bits stays NaN
        #expect(decoded[5] == .infinity)
        #expect(Array(bytes[12 ..< 14]) == [0x40, 0x40])  // 3.0 = 0x40400000
    }

    /// ggml's Q8_0: per block of 32, d = amax / 127 as f16, q = round(x / d), half away from zero.
    @Test func q8Layout() throws {
        var block = [Float](repeating: 0, count: 32)
        block[0] = 127; block[1] = -127; block[2] = 63.5; block[3] = -0.5; block[4] = 1.4
        let bytes = ActivationCodec.encode(block, as: .q8_0)
        #expect(bytes.count == 34)
        #expect(Array(bytes[0 ..< 7]) == [0x00, 0x3C, 0x7F, 0x81, 0x40, 0xFF, 0x01])  // d = 1.0; 127, -127, 64, -1, 1
        #expect(bytes[7...].allSatisfy { $0 == 0 })
        #expect(ActivationCodec.encode([Float](repeating: 0, count: 64), as: .q8_0) == [UInt8](repeating: 0, count: 68))
    }

    @Test func q8Bounds() throws {
        let values = sampleValues(32 * 128, seed: 4)
        let back = try ActivationCodec.decode(ActivationCodec.encode(values, as: .q8_0), as: .q8_0, count: values.count)
        for b in 0 ..< values.count / 32 {
            let block = values[b * 32 ..< b * 32 + 32]
            let amax = block.map { abs($0) }.max()!
            // Half a step of d = amax / 127, plus d's own f16 rounding over up to 127 steps.
            let bound = amax / 127 * (0.5 + 127 * 0x1p-11) * 1.0001
            for (x, y) in zip(block, back[b * 32 ..< b * 32 + 32]) {
                #expect(abs(x - y) <= bound, "\(x) → \(y) (amax \(amax))")
            }
        }
    }

    @Test func q8NeedsMultipleOf32() {
        #expect(throws: WireError.invalidValue(field: "activations", reason: "33 values cannot be encoded as q8_0 (q8_0 needs a multiple of 32)")) {
            try ActivationCodec.decode([UInt8](repeating: 0, count: 34), as: .q8_0, count: 33)
        }
    }

    /// NaN and infinity in the input must not trap the int8 conversion.
    @Test func q8NonFiniteInput() throws {
        var values = (0 ..< 64).map { Float($0) }
        values[3] = .nan
        values[40] = .infinity
        let back = try ActivationCodec.decode(ActivationCodec.encode(values, as: .q8_0), as: .q8_0, count: 64)
        #expect(back.count == 64)
        #expect(abs(back[31] - 31) < 0.2)
    }

    @Test func sizeMismatch() {
        for type in ActivationType.allCases {
            let bytes = ActivationCodec.encode([Float](repeating: 1, count: 64), as: type)
            #expect(throws: WireError.self) { try ActivationCodec.decode(bytes, as: type, count: 32) }
            #expect(throws: WireError.self) { try ActivationCodec.decode(bytes + [0], as: type, count: 64) }
            var out = [Float](repeating: 0, count: 96)
            #expect(throws: WireError.self) {
                try bytes.withUnsafeBytes { payload in
                    try out.withUnsafeMutableBufferPointer { try ActivationCodec.decode(payload, as: type, into: $0) }
                }
            }
        }
        #expect(throws: WireError.invalidValue(field: "activations.payload", reason: "6 bytes, but 2 f32 values take 8")) {
            try ActivationCodec.decode([0, 0, 0, 0, 0, 0], as: .f32, count: 2)
        }
    }

    @Test func unsafeBufferAPI() throws {
        let values: [Float] = (0 ..< 64).map { Float($0) / 8 }
        let bytes = values.withUnsafeBufferPointer { ActivationCodec.encode($0, as: .f16) }
        var out = [Float](repeating: .nan, count: 64)
        try bytes.withUnsafeBytes { payload in
            try out.withUnsafeMutableBufferPointer { try ActivationCodec.decode(payload, as: .f16, into: $0) }
        }
        #expect(out == values)  // multiples of 1/8 below 8 are exact in f16
    }

    #if !(os(macOS) && arch(x86_64))
    /// Against the platform's Float16: every half decodes to the same float, and floats across
    /// the whole range (and around every rounding boundary) encode to the same half.
    @Test func f16MatchesFloat16() throws {
        let allHalves = (0 ... 0xFFFF).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let decoded = try ActivationCodec.decode(allHalves, as: .f16, count: 65536)
        for h in 0 ... 0xFFFF {
            let expected = Float(Float16(bitPattern: UInt16(h)))
            let got = decoded[h]
            #expect(expected.isNaN ? got.isNaN : got.bitPattern == expected.bitPattern, "half 0x\(String(h, radix: 16))")
        }

        var rng = SplitMix64(seed: 5)
        var floats: [Float] = (0 ..< 100_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        // Halfway points and their neighbours between consecutive halves, normal and subnormal.
        for h in stride(from: 0, to: 0x7C00, by: 7) {
            let mid = (Float(Float16(bitPattern: UInt16(h))) + Float(Float16(bitPattern: UInt16(h + 1)))) / 2
            floats += [mid, mid.nextUp, mid.nextDown, -mid]
        }
        let encoded = ActivationCodec.encode(floats, as: .f16)
        var mismatches = 0
        for (i, x) in floats.enumerated() {
            let got = UInt16(encoded[2 * i]) | UInt16(encoded[2 * i + 1]) << 8
            let expected = Float16(x)
            if expected.isNaN ? !Float16(bitPattern: got).isNaN : got != expected.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }
    #endif
}
