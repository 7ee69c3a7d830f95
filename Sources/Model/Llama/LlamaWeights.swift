import QuantKernels

/// How the forward pass computes.
public enum Precision: String, Sendable, CaseIterable {
    /// Weights as stored in the file, decoded inside the matrix kernels, times activations in
    /// 16-bit fixed point per block of 32 (error ≤ amax/65534) for integer multiply-adds, where
    /// the kernels take the weight type (`qk_q16_preferred`, for any batch size, so that a row's
    /// result does not depend on the rows batched with it); otherwise f32 activations. Both stay within ~1e-3 of an f32 product, so this
    /// path tracks the F32 reference.
    case fast
    /// Weights as stored; activations quantized to 8 bits inside quantized products (Q8_0, Q8_1,
    /// Q8_K), as llama.cpp's CPU backend does. Adds ~0.2–0.6 of noise to the final logits.
    case q8
    /// Weights dequantized to f32 at load time, activations in f32: the reference path.
    case f32
}

/// The weights of one decoder layer.
public struct LayerWeights: Sendable {
    /// `blk.N.attn_norm.weight`, (dim)
    public let attnNorm: [Float]
    /// `blk.N.attn_q.weight`, (nHeads·headDim, dim)
    public let wq: Matrix
    /// `blk.N.attn_k.weight`, (kvDim, dim)
    public let wk: Matrix
    /// `blk.N.attn_v.weight`, (kvDim, dim)
    public let wv: Matrix
    /// `blk.N.attn_output.weight`, (dim, nHeads·headDim)
    public let wo: Matrix
    /// `blk.N.ffn_norm.weight`, (dim)
    public let ffnNorm: [Float]
    /// `blk.N.ffn_gate.weight`, (hiddenDim, dim)
    public let w1: Matrix
    /// `blk.N.ffn_down.weight`, (dim, hiddenDim)
    public let w2: Matrix
    /// `blk.N.ffn_up.weight`, (hiddenDim, dim)
    public let w3: Matrix
}

/// The weights one stage of the pipeline holds: a contiguous range of decoder layers and, when
/// asked, the token embedding (first stage) and final norm and output head (last stage).
/// Only those tensors are touched: a worker's resident memory is its share of the model.
public final class LlamaWeights: Sendable {
    public let config: LlamaConfig
    public let precision: Precision
    public let layerRange: Range<Int>
    /// Layer `l` is `layers[l - layerRange.lowerBound]`.
    public let layers: [LayerWeights]
    /// `token_embd.weight`, (vocab, dim)
    public let tokenEmbedding: Matrix?
    /// `output_norm.weight`, (dim)
    public let outputNorm: [Float]?
    /// `output.weight`, (vocab, dim); the token embedding when the file has none (tied).
    public let output: Matrix?
    /// `rope_freqs.weight`, (ropeDim / 2): per-pair divisors of the rotation frequency.
    public let ropeFreqFactors: [Float]?

    // Owners of the memory the matrices point into.
    private let file: GGUFFile
    private let buffers: [WeightBuffer]

    /// Loads `layers` and, optionally, the embedding and the head from a GGUF file.
    /// `progress` is called with the fraction done (the f32 path dequantizes every matrix).
    public init(gguf: GGUFFile, layers range: Range<Int>, embedding: Bool, head: Bool,
                precision: Precision, progress: ((Double) -> Void)? = nil) throws(GGUFError) {
        let config = try LlamaConfig(gguf: gguf)
        guard range.lowerBound >= 0, range.upperBound <= config.nLayers else {
            throw .invalidValue(key: "llama.block_count", reason: "layer range \(range) is outside 0..<\(config.nLayers)")
        }
        self.config = config
        self.precision = precision
        self.layerRange = range
        self.file = gguf
        var buffers: [WeightBuffer] = []
        let total = Double(range.count * 7 + (embedding ? 1 : 0) + (head ? 1 : 0))
        var done = 0.0

        func matrix(_ name: String, rows: Int, cols: Int) throws(GGUFError) -> Matrix {
            guard let info = gguf.tensorInfo(name) else { throw .missingTensor(name) }
            guard info.dims == [cols, rows] else { throw .shapeMismatch(tensor: name, expected: [cols, rows], got: info.dims) }
            let m = Matrix(type: info.type, rows: rows, cols: cols, rowBytes: info.rowBytes, data: gguf.data(of: info).baseAddress!)
            done += 1
            progress?(done / total)
            guard precision == .f32, m.type != .f32 else { return m }
            let buffer = WeightBuffer(bytes: rows * cols * 4)
            _ = qk_dequantize(m.type.rawValue, m.data, buffer.pointer.assumingMemoryBound(to: Float.self), Int64(rows * cols))
            buffers.append(buffer)
            return Matrix(type: .f32, rows: rows, cols: cols, rowBytes: cols * 4, data: buffer.pointer)
        }
        func vector(_ name: String, count: Int) throws(GGUFError) -> [Float] {
            guard let info = gguf.tensorInfo(name) else { throw .missingTensor(name) }
            guard info.dims == [count] else { throw .shapeMismatch(tensor: name, expected: [count], got: info.dims) }
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { buf in
                _ = qk_dequantize(info.type.rawValue, gguf.data(of: info).baseAddress!, buf.baseAddress!, Int64(count))
            }
            return out
        }

        let c = config
        var layers: [LayerWeights] = []
        for l in range {
            layers.append(LayerWeights(
                attnNorm: try vector(TensorName.attnNorm(l), count: c.dim),
                wq: try matrix(TensorName.wq(l), rows: c.qDim, cols: c.dim),
                wk: try matrix(TensorName.wk(l), rows: c.kvDim, cols: c.dim),
                wv: try matrix(TensorName.wv(l), rows: c.kvDim, cols: c.dim),
                wo: try matrix(TensorName.wo(l), rows: c.dim, cols: c.qDim),
                ffnNorm: try vector(TensorName.ffnNorm(l), count: c.dim),
                w1: try matrix(TensorName.w1(l), rows: c.hiddenDim, cols: c.dim),
                w2: try matrix(TensorName.w2(l), rows: c.dim, cols: c.hiddenDim),
                w3: try matrix(TensorName.w3(l), rows: c.hiddenDim, cols: c.dim)))
        }
        self.layers = layers
        // The embedding is only ever read a row at a time, so it stays in its file type.
        if embedding {
            guard let info = gguf.tensorInfo(TensorName.tokenEmbedding) else { throw .missingTensor(TensorName.tokenEmbedding) }
            guard info.dims == [c.dim, c.vocabSize] else {
                throw .shapeMismatch(tensor: TensorName.tokenEmbedding, expected: [c.dim, c.vocabSize], got: info.dims)
            }
            tokenEmbedding = Matrix(type: info.type, rows: c.vocabSize, cols: c.dim, rowBytes: info.rowBytes,
                                    data: gguf.data(of: info).baseAddress!)
        } else {
            tokenEmbedding = nil
        }
        if head {
            outputNorm = try vector(TensorName.outputNorm, count: c.dim)
            let name = gguf.tensorInfo(TensorName.output) != nil ? TensorName.output : TensorName.tokenEmbedding
            output = try matrix(name, rows: c.vocabSize, cols: c.dim)
        } else {
            outputNorm = nil
            output = nil
        }
        if gguf.tensorInfo(TensorName.ropeFreqs) != nil {
            ropeFreqFactors = try vector(TensorName.ropeFreqs, count: c.ropeDim / 2)
        } else {
            ropeFreqFactors = nil
        }
        self.buffers = buffers
    }

    /// Bytes of weight data this stage uses (its share of the model).
    public var byteCount: Int {
        let perLayer = layers.reduce(0) { sum, l in
            sum + [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3].reduce(0) { $0 + $1.byteCount } + (l.attnNorm.count + l.ffnNorm.count) * 4
        }
        return perLayer + (tokenEmbedding?.byteCount ?? 0) + (output?.byteCount ?? 0) + (outputNorm?.count ?? 0) * 4
    }
}
