/// Converts activations between Floats and their wire encodings (``ActivationType``):
///
/// - `f32`: 4 bytes per value, the IEEE bits little-endian; exact.
/// - `f16`: 2 bytes, IEEE binary16, rounded to nearest even.
/// - `bf16`: 2 bytes, the top half of the f32 bits, rounded to nearest even.
/// - `q8_0`: ggml's Q8_0, blocks of 32 values as 34 bytes: the scale d = amax / 127 as f16,
///   then 32 int8 q = round(x / d) (all zero when d is 0); a value is d × q.
///
/// These run for every forward, so they loop over unsafe buffers and allocate only the result.
public enum ActivationCodec {
    /// Values in one q8_0 block, and its size in bytes (f16 scale + 32 int8).
    static let q8Block = 32
    static let q8BlockBytes = 34

    /// Bytes that `values` values take as `type`; nil when `type` is q8_0 and `values` is not a
    /// multiple of 32 (or `values` is negative or absurdly large).
    public static func byteCount(values: Int, type: ActivationType) -> Int? {
        guard values >= 0 else { return nil }
        let (bytes, overflow): (Int, Bool) = switch type {
        case .f32: values.multipliedReportingOverflow(by: 4)
        case .f16, .bf16: values.multipliedReportingOverflow(by: 2)
        case .q8_0:
            values % q8Block == 0 ? (values / q8Block).multipliedReportingOverflow(by: q8BlockBytes) : (0, true)
        }
        return overflow ? nil : bytes
    }

    /// `values` encoded as `type`.
    ///
    /// For q8_0, `values.count` must be a multiple of 32 (check ``byteCount(values:type:)``):
    /// anything else is a programming error and traps, since no payload could hold it.
    public static func encode(_ values: UnsafeBufferPointer<Float>, as type: ActivationType) -> [UInt8] {
        guard let size = byteCount(values: values.count, type: type) else {
            fatalError("ActivationCodec.encode: \(values.count) values cannot be encoded as \(type)")
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(buffer)
            switch type {
            case .f32:
                for i in 0 ..< values.count {
                    out.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            case .f16:
                for i in 0 ..< values.count {
                    out.storeBytes(of: HalfFloat.f16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .bf16:
                for i in 0 ..< values.count {
                    out.storeBytes(of: HalfFloat.bf16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            case .q8_0:
                for block in 0 ..< values.count / q8Block {
                    quantizeQ8Block(values.baseAddress! + block * q8Block, into: out.baseAddress! + block * q8BlockBytes)
                }
            }
            initialized = size
        }
    }

    /// Decodes `payload` as `type` into `out`; the payload must hold exactly `out.count` values.
    public static func decode(_ payload: UnsafeRawBufferPointer, as type: ActivationType,
                              into out: UnsafeMutableBufferPointer<Float>) throws(WireError) {
        try checkSize(payload.count, values: out.count, type)
        decodeChecked(payload, as: type, into: out)
    }

    /// `values` encoded as `type`, like the `UnsafeBufferPointer` overload.
    public static func encode(_ values: [Float], as type: ActivationType) -> [UInt8] {
        values.withUnsafeBufferPointer { encode($0, as: type) }
    }

    /// `count` values decoded from `payload`, which must hold exactly that many as `type`.
    public static func decode(_ payload: [UInt8], as type: ActivationType, count: Int) throws(WireError) -> [Float] {
        try checkSize(payload.count, values: count, type)  // before the result is allocated
        return payload.withUnsafeBytes { bytes in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                decodeChecked(bytes, as: type, into: buffer)
                initialized = count
            }
        }
    }

    /// Throws unless `bytes` is exactly the size of `values` values as `type`.
    private static func checkSize(_ bytes: Int, values: Int, _ type: ActivationType) throws(WireError) {
        guard let expected = byteCount(values: values, type: type) else {
            throw .invalidValue(field: "activations", reason: "\(values) values cannot be encoded as \(type)"
                                + (type == .q8_0 ? " (q8_0 needs a multiple of 32)" : ""))
        }
        guard bytes == expected else {
            throw .invalidValue(field: "activations.payload", reason: "\(bytes) bytes, but \(values) \(type) values take \(expected)")
        }
    }

    /// The decoding loops, once the payload's size has been checked against `out.count`.
    private static func decodeChecked(_ payload: UnsafeRawBufferPointer, as type: ActivationType,
                                      into out: UnsafeMutableBufferPointer<Float>) {
        switch type {
        case .f32:
            for i in 0 ..< out.count {
                out[i] = Float(bitPattern: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0 ..< out.count {
                out[i] = HalfFloat.float(f16: UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0 ..< out.count {
                out[i] = HalfFloat.float(bf16: UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .q8_0:
            for block in 0 ..< out.count / q8Block {
                let at = block * q8BlockBytes
                let d = HalfFloat.float(f16: UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                for j in 0 ..< q8Block {
                    out[block * q8Block + j] = d * Float(Int8(bitPattern: payload[at + 2 + j]))
                }
            }
        }
    }

    /// One ggml Q8_0 block: d = amax / 127, q = round(x / d) computed as x × (1 / d) like
    /// ggml's reference quantizer, rounding half away from zero. NaN or infinite inputs must
    /// not trap the Int8 conversion, so each q is clamped and NaN becomes 0.
    @inline(__always)
    private static func quantizeQ8Block(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0 ..< q8Block {
            let a = abs(x[j])
            if a > amax { amax = a }
        }
        let d = amax / 127
        let inverse: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: HalfFloat.f16Bits(d).littleEndian, as: UInt16.self)
        let qs = out + 2
        for j in 0 ..< q8Block {
            let v = (x[j] * inverse).rounded()
            let q: Int8 = v >= 127 ? 127 : v <= -127 ? -127 : v.isNaN ? 0 : Int8(v)
            qs.storeBytes(of: q, toByteOffset: j, as: Int8.self)
        }
    }
}
