/// Tensor element types as numbered by ggml (`enum ggml_type`).
///
/// Only the types Strata computes with are cases; any other number found in a file is refused
/// by name through `GGMLType.name(of:)`.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case iq4_nl = 20
    case iq4_xs = 23
    case bf16 = 30

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl: 32
        case .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18   // f16 d, 16 bytes of nibbles
        case .q4_1: 20   // f16 d, f16 m, 16 bytes of nibbles
        case .q5_0: 22   // f16 d, 32 high bits, 16 bytes of nibbles
        case .q5_1: 24   // f16 d, f16 m, 32 high bits, 16 bytes of nibbles
        case .iq4_nl: 18 // f16 d, 16 bytes of indices into a 16-level table
        case .q8_0: 34   // f16 d, 32 int8
        case .q8_1: 36   // f16 d, f16 s (= d * sum), 32 int8
        case .q4_K: 144  // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
        case .q5_K: 176  // as q4_K plus 32 bytes of high bits
        case .q6_K: 210  // 128 low nibbles, 64 high 2-bit, 16 int8 scales, f16 d
        case .q8_K: 292  // f32 d, 256 int8, 16 int16 block sums
        case .iq4_xs: 136 // f16 d, u16 high scale bits, 4 bytes of low scale bits, 128 bytes of indices
        }
    }

    /// Whether a weight tensor of this type may appear in a model file we load.
    /// (`q8_1` and `q8_K` exist only as activation formats.)
    public var isWeightType: Bool { self != .q8_1 && self != .q8_K }

    /// Bytes needed for `elements` elements, or nil when `elements` is not a whole number of
    /// blocks or the product overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    public var description: String { GGMLType.name(of: rawValue) }

    /// ggml's name for a type number, including the types Strata does not support.
    public static func name(of raw: UInt32) -> String {
        let names: [UInt32: String] = [
            0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
            10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
            16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
            22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
            29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
        ]
        return names[raw] ?? "type#\(raw)"
    }
}
