/// The dimensions of a Llama-architecture model: what `strata synth` makes a model of, and what
/// the planner reasons about, without needing the real weights.
public struct ModelShape: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var layers: Int
    public var dim: Int
    public var heads: Int
    public var kvHeads: Int
    public var ffn: Int
    public var vocab: Int
    public var context: Int
    public var ropeTheta: Float

    public init(name: String = "custom", layers: Int, dim: Int, heads: Int, kvHeads: Int, ffn: Int,
                vocab: Int = 32000, context: Int = 4096, ropeTheta: Float = 10000) {
        self.name = name; self.layers = layers; self.dim = dim; self.heads = heads; self.kvHeads = kvHeads
        self.ffn = ffn; self.vocab = vocab; self.context = context; self.ropeTheta = ropeTheta
    }

    public var headDim: Int { dim / heads }
    public var kvDim: Int { kvHeads * headDim }

    /// Weight elements of one decoder layer's seven matrices.
    public var layerMatrixElements: Int { 2 * dim * dim + 2 * dim * kvDim + 3 * dim * ffn }

    /// Weight elements in all: layers, embedding and an untied output head.
    public var parameterCount: Int { layers * (layerMatrixElements + 2 * dim) + 2 * vocab * dim + dim }

    public var description: String {
        "\(name): \(layers) layers, dim \(dim), \(heads)/\(kvHeads) heads, FFN \(ffn), vocabulary \(vocab), context \(context)"
    }

    /// Why these dimensions cannot make a model, or nil when they can.
    public func problem(blockSize: Int) -> String? {
        if [layers, dim, heads, kvHeads, ffn, vocab, context].contains(where: { $0 <= 0 }) {
            return "layers, dim, heads, kv-heads, ffn, vocabulary and context must all be positive"
        }
        if dim % heads != 0 { return "dim \(dim) is not a multiple of heads \(heads)" }
        if heads % kvHeads != 0 { return "heads \(heads) is not a multiple of kv-heads \(kvHeads)" }
        if headDim % 2 != 0 { return "the head dimension \(headDim) must be even (rotary pairs)" }
        for width in [dim, ffn] where width % blockSize != 0 {
            return "width \(width) is not a multiple of the weight type's block of \(blockSize) elements"
        }
        return nil
    }

    /// Shapes of well-known models (their published configurations).
    public static let named: [ModelShape] = [
        ModelShape(name: "smollm2-135m", layers: 30, dim: 576, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, context: 8192, ropeTheta: 100_000),
        ModelShape(name: "llama-7b", layers: 32, dim: 4096, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000, context: 4096),
        ModelShape(name: "llama-13b", layers: 40, dim: 5120, heads: 40, kvHeads: 40, ffn: 13824, vocab: 32000, context: 4096),
        ModelShape(name: "llama-70b", layers: 80, dim: 8192, heads: 64, kvHeads: 8, ffn: 28672, vocab: 32000, context: 4096),
        ModelShape(name: "llama3-8b", layers: 32, dim: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128_256, context: 8192, ropeTheta: 500_000),
        ModelShape(name: "llama3-70b", layers: 80, dim: 8192, heads: 64, kvHeads: 8, ffn: 28672, vocab: 128_256, context: 8192, ropeTheta: 500_000),
        ModelShape(name: "mistral-7b", layers: 32, dim: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 32000, context: 32768, ropeTheta: 1_000_000),
    ]

    public static func named(_ name: String) -> ModelShape? { named.first { $0.name == name.lowercased() } }
}
