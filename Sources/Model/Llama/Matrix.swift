import QuantKernels

/// A weight matrix of `rows` rows of `cols` elements each, in a GGML type, laid out as in GGUF
/// (row r starts at `data + r * rowBytes`). The bytes belong to a mapping or buffer that the
/// owning `LlamaWeights` keeps alive.
public struct Matrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    public let data: UnsafeRawPointer

    public var byteCount: Int { rows * rowBytes }

    /// Dequantizes row `r` into `out` (`cols` floats).
    func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        _ = qk_dequantize(type.rawValue, data + r * rowBytes, out, Int64(cols))
    }
}

/// Memory we allocated for weights (dequantized copies in the f32 path), freed with its owner.
final class WeightBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(bytes: Int) {
        count = bytes
        pointer = .allocate(byteCount: max(bytes, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}
