import Foundation
import StrataModel

/// A tiny Llama model with seeded random weights, written to a temporary GGUF file, so engine
/// and cluster tests run on real files without downloads. Its vocabulary (for the coordinator,
/// which owns a tokenizer) is byte-level: token i is the character 0x21 + i, no merges, no
/// end-of-generation token, so greedy runs last their full length.
public struct TinyModel: Sendable {
    public var dim = 32
    public var hiddenDim = 64
    public var nLayers = 4
    public var nHeads = 4
    public var nKVHeads = 2
    public var vocab = 64
    public var contextLength = 64
    public var ropeTheta: Float = 10000
    public var seed: UInt64 = 7
    /// Weight type of the matrices: f32, or random blocks of a quantized type.
    public var matrixType: GGMLType = .f32
    public var tiedOutput = true
    /// Written as `rope_freqs.weight` when set: per-pair divisors of the rotation frequency.
    public var ropeFreqFactors: [Float]?

    public init(dim: Int = 32, hiddenDim: Int = 64, nLayers: Int = 4, nHeads: Int = 4, nKVHeads: Int = 2, vocab: Int = 64,
                contextLength: Int = 64, seed: UInt64 = 7, matrixType: GGMLType = .f32) {
        self.dim = dim; self.hiddenDim = hiddenDim; self.nLayers = nLayers; self.nHeads = nHeads
        self.nKVHeads = nKVHeads; self.vocab = vocab; self.contextLength = contextLength; self.seed = seed
        self.matrixType = matrixType
    }

    public var headDim: Int { dim / nHeads }

    /// Writes the model and returns its path (deleted by the caller when done, or left in /tmp).
    public func write() throws -> String {
        var rng = Xoshiro256StarStar(seed: seed)
        var w = GGUFWriter()
        w.add(key: "general.architecture", .string("llama"))
        w.add(key: "llama.embedding_length", .uint32(UInt32(dim)))
        w.add(key: "llama.feed_forward_length", .uint32(UInt32(hiddenDim)))
        w.add(key: "llama.block_count", .uint32(UInt32(nLayers)))
        w.add(key: "llama.attention.head_count", .uint32(UInt32(nHeads)))
        w.add(key: "llama.attention.head_count_kv", .uint32(UInt32(nKVHeads)))
        w.add(key: "llama.context_length", .uint32(UInt32(contextLength)))
        w.add(key: "llama.rope.freq_base", .float32(ropeTheta))
        w.add(key: "llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.add(key: "tokenizer.ggml.model", .string("gpt2"))
        w.add(key: "tokenizer.ggml.tokens", .array(elementType: 8, (0 ..< vocab).map {
            .string(String(UnicodeScalar(UInt8(truncatingIfNeeded: 0x21 + $0 % 94))) + ($0 < 94 ? "" : "\($0 / 94)"))
        }))
        w.add(key: "tokenizer.ggml.merges", .array(elementType: 8, []))

        func floats(_ n: Int, scale: Float) -> [Float] {
            (0 ..< n).map { _ in Float(rng.nextUnitDouble() * 2 - 1) * scale }
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws {
            let scale = 1 / Float(cols).squareRoot() * 1.7
            switch matrixType {
            case .f32:
                try w.addTensor(name: name, dims: [cols, rows], values: floats(rows * cols, scale: scale))
            case .q8_0:
                var bytes: [UInt8] = []
                for _ in 0 ..< rows * cols / 32 {
                    let d = Float16(scale / 127).bitPattern
                    bytes += [UInt8(d & 0xFF), UInt8(d >> 8)]
                    bytes += (0 ..< 32).map { _ in UInt8(truncatingIfNeeded: Int8.random(in: -127 ... 127, using: &rng)) }
                }
                try w.addTensor(name: name, dims: [cols, rows], type: .q8_0, data: bytes)
            case .q4_1:
                var bytes: [UInt8] = []
                for _ in 0 ..< rows * cols / 32 {
                    let d = Float16(scale / 8).bitPattern, m = Float16(-scale).bitPattern
                    bytes += [UInt8(d & 0xFF), UInt8(d >> 8), UInt8(m & 0xFF), UInt8(m >> 8)]
                    bytes += (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
                }
                try w.addTensor(name: name, dims: [cols, rows], type: .q4_1, data: bytes)
            default:
                fatalError("TinyModel does not make \(matrixType) weights")
            }
        }
        func norm(_ name: String) throws {
            try w.addTensor(name: name, dims: [dim], values: (0 ..< dim).map { _ in 0.8 + Float(rng.nextUnitDouble()) * 0.4 })
        }

        try w.addTensor(name: "token_embd.weight", dims: [dim, vocab], values: floats(vocab * dim, scale: 1))
        for l in 0 ..< nLayers {
            try norm("blk.\(l).attn_norm.weight")
            try matrix("blk.\(l).attn_q.weight", rows: nHeads * headDim, cols: dim)
            try matrix("blk.\(l).attn_k.weight", rows: nKVHeads * headDim, cols: dim)
            try matrix("blk.\(l).attn_v.weight", rows: nKVHeads * headDim, cols: dim)
            try matrix("blk.\(l).attn_output.weight", rows: dim, cols: nHeads * headDim)
            try norm("blk.\(l).ffn_norm.weight")
            try matrix("blk.\(l).ffn_gate.weight", rows: hiddenDim, cols: dim)
            try matrix("blk.\(l).ffn_up.weight", rows: hiddenDim, cols: dim)
            try matrix("blk.\(l).ffn_down.weight", rows: dim, cols: hiddenDim)
        }
        try norm("output_norm.weight")
        if let f = ropeFreqFactors { try w.addTensor(name: "rope_freqs.weight", dims: [f.count], values: f) }
        if !tiedOutput { try matrix("output.weight", rows: vocab, cols: dim) }

        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("strata-tiny-\(UUID().uuidString).gguf").path
        try w.write(to: path)
        return path
    }

    /// Loads layers `layers` of the model at `path` (embedding with layer 0, head with the last).
    public static func engine(path: String, layers: Range<Int>? = nil, precision: Precision = .f32, threads: Int = 2) throws -> LlamaEngine {
        let gguf = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: gguf)
        let range = layers ?? 0 ..< config.nLayers
        let weights = try LlamaWeights(gguf: gguf, layers: range, embedding: range.lowerBound == 0,
                                       head: range.upperBound == config.nLayers, precision: precision)
        return LlamaEngine(weights: weights, threads: threads)
    }
}
