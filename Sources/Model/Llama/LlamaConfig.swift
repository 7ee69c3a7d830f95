/// Hyperparameters of a Llama-architecture model, read from GGUF metadata (`llama.*`).
public struct LlamaConfig: Sendable, Equatable {
    public var dim: Int            // embedding_length
    public var hiddenDim: Int      // feed_forward_length
    public var nLayers: Int        // block_count
    public var nHeads: Int         // attention.head_count
    public var nKVHeads: Int       // attention.head_count_kv
    public var headDim: Int        // dim / nHeads, or attention.key_length
    public var vocabSize: Int
    public var contextLength: Int  // context_length
    public var ropeTheta: Float    // rope.freq_base
    public var ropeDim: Int        // rope.dimension_count: leading dims of each head that rotate
    public var normEps: Float      // attention.layer_norm_rms_epsilon

    public var kvDim: Int { nKVHeads * headDim }
    public var qDim: Int { nHeads * headDim }
    /// Query heads per key/value head.
    public var kvMul: Int { nHeads / nKVHeads }

    public init(dim: Int, hiddenDim: Int, nLayers: Int, nHeads: Int, nKVHeads: Int, headDim: Int? = nil,
                vocabSize: Int, contextLength: Int, ropeTheta: Float = 10000, ropeDim: Int? = nil,
                normEps: Float = 1e-5) {
        self.dim = dim
        self.hiddenDim = hiddenDim
        self.nLayers = nLayers
        self.nHeads = nHeads
        self.nKVHeads = nKVHeads
        self.headDim = headDim ?? dim / nHeads
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.ropeDim = ropeDim ?? (headDim ?? dim / nHeads)
        self.normEps = normEps
    }

    /// Reads and checks the configuration; an architecture other than `llama` is refused by name.
    public init(gguf: GGUFFile) throws(GGUFError) {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else { throw .unsupportedArchitecture(arch) }
        func key(_ k: String) -> String { "llama." + k }
        dim = try gguf.int(key("embedding_length"))
        hiddenDim = try gguf.int(key("feed_forward_length"))
        nLayers = try gguf.int(key("block_count"))
        nHeads = try gguf.int(key("attention.head_count"))
        nKVHeads = try gguf.optionalInt(key("attention.head_count_kv")) ?? nHeads
        contextLength = try gguf.int(key("context_length"))
        ropeTheta = Float(try gguf.optionalFloat(key("rope.freq_base")) ?? 10000)
        normEps = Float(try gguf.optionalFloat(key("attention.layer_norm_rms_epsilon")) ?? 1e-5)
        guard nHeads > 0, dim > 0 else { throw .invalidValue(key: key("attention.head_count"), reason: "must be positive") }
        headDim = try gguf.optionalInt(key("attention.key_length")) ?? dim / nHeads
        ropeDim = try gguf.optionalInt(key("rope.dimension_count")) ?? headDim
        if let embd = gguf.tensorInfo("token_embd.weight"), embd.dims.count == 2 {
            vocabSize = embd.dims[1]
        } else {
            vocabSize = try gguf.optionalInt(key("vocab_size")) ?? 0
        }
        try validate()
    }

    /// Checks the relations the forward pass relies on.
    public func validate() throws(GGUFError) {
        func bad(_ k: String, _ why: String) -> GGUFError { .invalidValue(key: "llama." + k, reason: why) }
        guard dim > 0, hiddenDim > 0, nLayers > 0, contextLength > 0, vocabSize > 0 else {
            throw bad("embedding_length", "dimensions, layer count, context length and vocabulary must be positive")
        }
        guard nKVHeads > 0, nHeads % nKVHeads == 0 else {
            throw bad("attention.head_count_kv", "\(nKVHeads) does not divide head_count \(nHeads)")
        }
        guard headDim > 0, headDim % 2 == 0 else { throw bad("attention.key_length", "head dimension \(headDim) must be even") }
        guard ropeDim > 0, ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw bad("rope.dimension_count", "\(ropeDim) must be even and at most the head dimension \(headDim)")
        }
        guard ropeTheta > 0, normEps > 0 else { throw bad("rope.freq_base", "rope base and norm epsilon must be positive") }
        guard nHeads * headDim < 1 << 20, dim < 1 << 20, hiddenDim < 1 << 22, contextLength <= 1 << 24 else {
            throw bad("embedding_length", "dimensions are implausibly large")
        }
    }
}
