import Foundation
import QuantKernels
import StrataModel
import TestSupport

enum KernelTestData {
    /// A finite half-precision bit pattern for a moderate value: magnitude in [2^-10, 2), random sign.
    static func moderateHalf(_ rng: inout SplitMix64) -> UInt16 {
        let magnitude = Float.random(in: 0.001...1.99, using: &rng)
        let value = Bool.random(using: &rng) ? magnitude : -magnitude
        return Float16(value).bitPattern
    }

    /// Offsets of the half-precision scale fields in one block of a quantized weight type.
    static func scaleOffsets(_ type: GGMLType) -> [Int] {
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq4_nl, .iq4_xs: [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q6_K: [208]
        default: []
        }
    }

    /// `count` elements of a weight type as raw GGUF bytes: random bytes for quantized types with
    /// every scale field replaced by a moderate finite half; finite random values for F16/BF16/F32
    /// (F16 and BF16 bit patterns include subnormals, never inf or nan).
    static func randomWeights(_ type: GGMLType, count: Int, rng: inout SplitMix64, scale: Float = 1) -> [UInt8] {
        switch type {
        case .f32:
            let values = (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
            return values.withUnsafeBytes { Array($0) }
        case .f16:
            let bits: [UInt16] = (0..<count).map { _ in
                while true {
                    let b = UInt16.random(in: 0...UInt16.max, using: &rng)
                    if b & 0x7C00 != 0x7C00 { return b }
                }
            }
            return bits.withUnsafeBytes { Array($0) }
        case .bf16:
            // Exponent kept within about 2^-40...2^40 so products stay far from overflow.
            let bits: [UInt16] = (0..<count).map { _ in
                let sign = UInt16.random(in: 0...1, using: &rng) << 15
                let exponent = UInt16.random(in: 87...167, using: &rng) << 7
                return sign | exponent | UInt16.random(in: 0...0x7F, using: &rng)
            }
            return bits.withUnsafeBytes { Array($0) }
        default:
            let bytes = type.byteCount(elements: count)!
            var out = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for block in stride(from: 0, to: bytes, by: type.blockBytes) {
                for offset in scaleOffsets(type) {
                    let h = moderateHalf(&rng)
                    out[block + offset] = UInt8(h & 0xFF)
                    out[block + offset + 1] = UInt8(h >> 8)
                }
            }
            return out
        }
    }

    /// Dequantizes with QuantKernels, failing loudly on an unsupported type.
    static func dequantize(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        let rc = bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { qk_dequantize(type.rawValue, src.baseAddress, $0.baseAddress, Int64(count)) }
        }
        precondition(rc == 0, "qk_dequantize refused \(type)")
        return out
    }
}
