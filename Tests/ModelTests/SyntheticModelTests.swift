import Foundation
import StrataModel
import Testing
import TestSupport

/// `strata synth`'s models: the shape asked for, every weight type, reproducible from the seed,
/// loadable by the engine and by the tokenizer, with a non-degenerate greedy output.
@Suite struct SyntheticModelTests {
    static let shape = ModelShape(name: "test", layers: 3, dim: 256, heads: 4, kvHeads: 2, ffn: 512, vocab: 300, context: 128)

    static func write(_ type: GGMLType, seed: UInt64 = 1, shape: ModelShape = shape) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("strata-synth-\(UUID().uuidString).gguf").path
        try SyntheticModel(shape: shape, type: type, seed: seed).write(to: path)
        return path
    }

    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs, .f16, .bf16, .f32])
    func makesTheShapeAndAVariedGreedyOutput(type: GGMLType) throws {
        let path = try Self.write(type)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: gguf)
        let s = Self.shape
        #expect(config == LlamaConfig(dim: s.dim, hiddenDim: s.ffn, nLayers: s.layers, nHeads: s.heads, nKVHeads: s.kvHeads,
                                      headDim: s.headDim, vocabSize: s.vocab, contextLength: s.context, ropeTheta: s.ropeTheta,
                                      ropeDim: s.headDim, normEps: 1e-5))
        #expect(gguf.tensors.filter { $0.dims.count == 2 }.allSatisfy { $0.type == type })

        // Every matrix row has an RMS near 1/√cols (the scale that keeps activations healthy).
        let wq = gguf.tensorInfo("blk.1.attn_q.weight")!
        let rows = KernelTestData.dequantize(type, Array(gguf.data(of: wq)), count: wq.dims[0] * wq.dims[1])
        let rms = (rows.reduce(0) { $0 + Double($1) * Double($1) } / Double(rows.count)).squareRoot()
        let target = 1 / Double(s.dim).squareRoot()
        #expect(abs(rms / target - 1) < 0.1, "\(type): weight RMS \(rms), target \(target)")
        let mean = rows.reduce(0) { $0 + Double($1) } / Double(rows.count)
        #expect(abs(mean) < 0.02 * target, "\(type): weights are not centred (mean \(mean))")

        // Greedy generation is not one token repeated, and the logits are finite and spread.
        let engine = try TinyModel.engine(path: path, precision: .fast)
        let (ids, logits) = try engine.greedy(prompt: [10, 20, 30, 40], steps: 24)
        let mostCommon = Dictionary(grouping: ids, by: { $0 }).values.map(\.count).max() ?? 0
        #expect(Set(ids).count >= 4 && mostCommon <= 18, "\(type): greedy output \(ids)")
        let first = logits[0]
        #expect(first.allSatisfy { $0.isFinite })
        let spread = (first.map { Double($0 * $0) }.reduce(0, +) / Double(first.count)).squareRoot()
        #expect(spread > 0.1 && spread < 100, "\(type): logit RMS \(spread)")

        // The tokenizer loads: text round-trips through the byte-level vocabulary.
        let tokenizer = try Tokenizer(gguf: gguf)
        let text = "Hello, wörld!\n"
        #expect(tokenizer.decode(tokenizer.encode(text, addBOS: false, parseSpecial: false)) == text)
    }

    @Test func sameSeedSameFileOtherSeedOtherWeights() throws {
        let a = try Self.write(.q4_K, seed: 5), b = try Self.write(.q4_K, seed: 5), c = try Self.write(.q4_K, seed: 6)
        defer { for p in [a, b, c] { try? FileManager.default.removeItem(atPath: p) } }
        let (da, db, dc) = (try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)),
                            try Data(contentsOf: URL(fileURLWithPath: c)))
        #expect(da == db)
        #expect(da.count == dc.count && da != dc)
    }

    @Test func refusesShapesThatCannotBe() {
        var s = Self.shape
        s.dim = 250  // not a multiple of the heads, nor of a block
        #expect(throws: GGUFError.self) { try SyntheticModel(shape: s, type: .q4_0).write(to: "/tmp/never-written.gguf") }
        s = Self.shape
        s.ffn = 544  // a multiple of 32, not of Q4_K's 256
        #expect(throws: GGUFError.self) { try SyntheticModel(shape: s, type: .q4_K).write(to: "/tmp/never-written.gguf") }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written.gguf"))
        #expect(ModelShape.named("mistral-7b")?.kvHeads == 8)
        #expect(ModelShape.named("llama-70b")?.layers == 80)
    }
}
