import ArgumentParser
import Foundation
import StrataModel

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a Llama GGUF with seeded random weights of a real model's shape.",
        discussion: """
            For measuring speed, memory and a cluster's plan at the size people run, without \
            downloading the model. Shapes: \(ModelShape.named.map(\.name).joined(separator: ", ")); \
            or give every dimension with --layers, --dim, --heads, --kv-heads and --ffn.
            """)

    @Option(help: "A named model shape.")
    var shape: String?

    @Option(help: "Decoder layers (overrides the shape's).")
    var layers: Int?
    @Option(help: "Model width.")
    var dim: Int?
    @Option(help: "Query heads.")
    var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Key/value heads.")
    var kvHeads: Int?
    @Option(help: "Feed-forward width.")
    var ffn: Int?
    @Option(help: "Vocabulary size (ignored with --tokenizer-from).")
    var vocab: Int?
    @Option(help: "Context length.")
    var context: Int?

    @Option(help: "Weight type of the matrices: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, f16, bf16, f32.")
    var type = "q4_0"

    @Option(help: "Where to write the GGUF file.")
    var out: String

    @Option(name: .customLong("tokenizer-from"), help: "Copy the tokenizer of this GGUF file (the vocabulary size follows it).")
    var tokenizerFrom: String?

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 1

    func run() throws {
        guard let weightType = GGMLType(weightName: type) else {
            throw ValidationError("--type \(type) is not a weight type Strata computes with")
        }
        var s: ModelShape
        if let shape {
            guard let named = ModelShape.named(shape) else {
                throw ValidationError("unknown --shape \(shape); known: \(ModelShape.named.map(\.name).joined(separator: ", "))")
            }
            s = named
        } else {
            guard let layers, let dim, let heads, let ffn else {
                throw ValidationError("give --shape NAME, or --layers, --dim, --heads and --ffn (and --kv-heads)")
            }
            s = ModelShape(layers: layers, dim: dim, heads: heads, kvHeads: kvHeads ?? heads, ffn: ffn)
        }
        if let layers { s.layers = layers }
        if let dim { s.dim = dim }
        if let heads { s.heads = heads }
        if let kvHeads { s.kvHeads = kvHeads }
        if let ffn { s.ffn = ffn }
        if let vocab { s.vocab = vocab }
        if let context { s.context = context }
        var tokenizer: [(key: String, value: GGUFValue)]?
        if let tokenizerFrom {
            let (entries, size) = try SyntheticModel.tokenizer(of: GGUFFile(path: tokenizerFrom))
            tokenizer = entries
            s.vocab = size
        }
        if let problem = s.problem(blockSize: weightType.blockSize) { throw ValidationError(problem) }

        let model = SyntheticModel(shape: s, type: weightType, seed: seed, tokenizer: tokenizer)
        let start = ContinuousClock.now
        FileHandle.standardError.write(Data("writing \(s) as \(weightType), about \(Self.bytes(Self.estimate(s, weightType)))…\n".utf8))
        try model.write(to: out)
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        print("\(out): \(s.name) shape, \(Self.bytes(size)), \(weightType), seed \(seed), \(s.parameterCount / 1_000_000)M parameters (\(String(format: "%.1f", (ContinuousClock.now - start).totalSeconds)) s)")
    }

    static func estimate(_ s: ModelShape, _ type: GGMLType) -> Int {
        s.parameterCount / type.blockSize * type.blockBytes
    }

    static func bytes(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.2f GiB", Double(n) / Double(1 << 30)) : String(format: "%.1f MiB", Double(n) / Double(1 << 20))
    }
}

extension GGMLType {
    /// The weight type named `name` (as `--type` takes it: q4_0, q4_k, f16, …), case-insensitively.
    init?(weightName name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.isWeightType && $0.description.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
