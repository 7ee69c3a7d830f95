/// Conversions between Float and the two 16-bit formats, by bit manipulation so they behave the
/// same on every platform (Swift's `Float16` is unavailable on Intel macOS) and compile to a
/// few branch-light integer operations in the activation loops.
enum HalfFloat {
    /// IEEE binary16 bits of `value`, rounded to nearest even; overflow gives infinity, NaN
    /// stays NaN (quiet). After Fabian Giesen's float_to_half_fast3_rtne.
    @inline(__always)
    static func f16Bits(_ value: Float) -> UInt16 {
        var bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        bits &= 0x7FFF_FFFF
        let half: UInt16
        if bits >= 0x4780_0000 {
            // |value| ≥ 65536 (or infinity, NaN): infinity, or a quiet NaN.
            half = bits > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if bits < 0x3880_0000 {
            // Below the smallest normal half (2^-14): a subnormal or zero. Adding 0.5 lines
            // the 10 subnormal mantissa bits up at the bottom of the float, and the FPU's
            // round-to-nearest-even does the rounding.
            let magic = Float(bitPattern: 0x3F00_0000)
            half = UInt16(truncatingIfNeeded: (Float(bitPattern: bits) + magic).bitPattern &- 0x3F00_0000)
        } else {
            // Rebias the exponent and round the 13 dropped mantissa bits to nearest even; a
            // carry out of the mantissa correctly bumps the exponent (up to infinity).
            let odd = (bits >> 13) & 1
            bits = bits &+ 0xC800_0FFF &+ odd  // (15 - 127) << 23, plus the rounding bias
            half = UInt16(truncatingIfNeeded: bits >> 13)
        }
        return half | sign
    }

    /// The Float value of IEEE binary16 bits (exact: every half is a float).
    @inline(__always)
    static func float(f16 half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = half & 0x7C00
        let mantissa = UInt32(half & 0x03FF)
        if exponent == 0x7C00 {
            return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)  // infinity, NaN
        }
        if exponent == 0 {
            // Zero or subnormal: mantissa × 2^-24, exact in a float.
            let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | ((UInt32(half & 0x7FFF) << 13) &+ 0x3800_0000))
    }

    /// bfloat16 bits of `value`: its top 16 bits, rounded to nearest even. NaN stays NaN (the
    /// quiet bit is set so that dropping mantissa bits cannot turn it into infinity).
    @inline(__always)
    static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// The Float value of bfloat16 bits (exact).
    @inline(__always)
    static func float(bf16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
