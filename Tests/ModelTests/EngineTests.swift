import Foundation
import StrataModel
import TestSupport
import Testing

/// The engine on tiny random models built in the test.
struct EngineTests {
    /// Logits at every position of `tokens` in one sequence, from one batched forward pass.
    static func batchLogits(_ engine: LlamaEngine, _ tokens: [Int32], kv: KVCacheType = .f32) throws -> [Float] {
        let cache = engine.makeCache(type: kv)
        var x = try engine.embed(tokens)
        try engine.forward(&x, batch: tokens.indices.map { BatchToken(sequence: 1, position: $0) }, cache: cache)
        return try engine.logits(x, rows: Array(tokens.indices))
    }

    static func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    static let prompt: [Int32] = [3, 17, 42, 5, 9, 60, 1, 33, 8, 21, 50, 2, 7]

    /// GQA for several nHeads/nKVHeads ratios (1:1 multi-head, 2:1, 4:1, 3:1, multi-query)
    /// against the independent Double-precision forward pass.
    @Test(arguments: [(4, 4), (4, 2), (4, 1), (6, 2), (8, 2), (6, 3)])
    func matchesNaiveForward(heads: (Int, Int)) throws {
        var tiny = TinyModel()
        (tiny.nHeads, tiny.nKVHeads) = heads
        tiny.dim = heads.0 * 8
        tiny.tiedOutput = heads.0 % 2 == 0
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        let got = try Self.batchLogits(engine, Self.prompt)
        let want = try NaiveLlama(path: path).logits(Self.prompt).flatMap { $0.map(Float.init) }
        #expect(Self.maxDiff(got, want) < 1e-3, "heads \(heads)")
    }

    /// `rope_freqs.weight` divides each pair's frequency (as Llama 3.1 files carry it).
    @Test func ropeFrequencyFactorsFromTheFile() throws {
        var tiny = TinyModel()
        tiny.ropeFreqFactors = (0 ..< tiny.headDim / 2).map { 1 + Float($0) * 0.75 }
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        #expect(engine.weights.ropeFreqFactors == tiny.ropeFreqFactors)
        let got = try Self.batchLogits(engine, Self.prompt)
        let want = try NaiveLlama(path: path).logits(Self.prompt).flatMap { $0.map(Float.init) }
        #expect(Self.maxDiff(got, want) < 1e-3)
        var plain = tiny
        plain.ropeFreqFactors = nil
        let plainPath = try plain.write()
        defer { try? FileManager.default.removeItem(atPath: plainPath) }
        #expect(Self.maxDiff(got, try Self.batchLogits(TinyModel.engine(path: plainPath), Self.prompt)) > 1e-2)
    }

    /// Decoding one token at a time through the KV cache equals a full forward of the prefix.
    @Test(arguments: [KVCacheType.f32, .f16])
    func incrementalDecodeEqualsFullForward(kv: KVCacheType) throws {
        let path = try TinyModel().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        let full = try Self.batchLogits(engine, Self.prompt, kv: kv)
        let cache = engine.makeCache(type: kv)
        var stepwise: [Float] = []
        for (p, t) in Self.prompt.enumerated() {
            var x = try engine.embed([t])
            try engine.forward(&x, batch: [BatchToken(sequence: 9, position: p)], cache: cache)
            stepwise += try engine.logits(x, rows: [0])
        }
        #expect(Self.maxDiff(full, stepwise) < 1e-4)
    }

    /// Layers 0..<k on one engine then k..<L on another equals 0..<L, bit for bit, for every k.
    @Test func splitAtEveryLayerIsBitIdentical() throws {
        var tiny = TinyModel()
        tiny.nLayers = 5
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let whole = try TinyModel.engine(path: path)
        let want = try Self.batchLogits(whole, Self.prompt)
        for k in 1 ..< tiny.nLayers {
            let first = try TinyModel.engine(path: path, layers: 0 ..< k)
            let second = try TinyModel.engine(path: path, layers: k ..< tiny.nLayers)
            #expect(first.weights.output == nil && second.weights.tokenEmbedding == nil)
            let batch = Self.prompt.indices.map { BatchToken(sequence: 1, position: $0) }
            var x = try first.embed(Self.prompt)
            try first.forward(&x, batch: batch, cache: first.makeCache(type: .f32))
            try second.forward(&x, batch: batch, cache: second.makeCache(type: .f32))
            #expect(try second.logits(x, rows: Array(Self.prompt.indices)) == want, "split at \(k)")
        }
    }

    /// Several sequences at their own positions in one batch give what each gives alone.
    @Test func mixedBatchEqualsSeparateSequences() throws {
        let path = try TinyModel().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        let a: [Int32] = [1, 2, 3, 4, 5, 6], b: [Int32] = [9, 8, 7]
        let aloneA = try Self.batchLogits(engine, a), aloneB = try Self.batchLogits(engine, b)

        let cache = engine.makeCache(type: .f32)
        // Prefill a[0..<4] and b[0..<2] together, then one decode step of each, interleaved.
        var x = try engine.embed(Array(a[0 ..< 4]) + Array(b[0 ..< 2]))
        let batch = (0 ..< 4).map { BatchToken(sequence: 10, position: $0) } + (0 ..< 2).map { BatchToken(sequence: 11, position: $0) }
        try engine.forward(&x, batch: batch, cache: cache)
        var got = try engine.logits(x, rows: [3, 5])
        var y = try engine.embed([b[2], a[4]])
        try engine.forward(&y, batch: [BatchToken(sequence: 11, position: 2), BatchToken(sequence: 10, position: 4)], cache: cache)
        got += try engine.logits(y, rows: [0, 1])
        let v = engine.config.vocabSize
        let want = Array(aloneA[3 * v ..< 4 * v]) + Array(aloneB[1 * v ..< 2 * v]) + Array(aloneB[2 * v ..< 3 * v]) + Array(aloneA[4 * v ..< 5 * v])
        #expect(Self.maxDiff(got, want) < 1e-4)
        #expect(cache.count(of: 10) == 5 && cache.count(of: 11) == 3)
    }

    /// Quantized weights: the fast path agrees with the f32 path on the same (dequantized) weights.
    @Test(arguments: [GGMLType.q8_0, .q4_1])
    func quantizedFastPathAgreesWithF32(type: GGMLType) throws {
        var tiny = TinyModel()
        tiny.matrixType = type
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fast = try Self.batchLogits(TinyModel.engine(path: path, precision: .fast), Self.prompt)
        let f32 = try Self.batchLogits(TinyModel.engine(path: path, precision: .f32), Self.prompt)
        let scale = f32.map { abs($0) }.max()!
        #expect(Self.maxDiff(fast, f32) < 0.05 * scale, "\(type)")
    }

    /// Past the context, out of order, too many sequences: clear errors, the cache untouched.
    @Test func cacheLimitsAreErrors() throws {
        var tiny = TinyModel()
        tiny.contextLength = 8
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        let cache = engine.makeCache(maxSequences: 2)
        var x = try engine.embed(Array(repeating: 1, count: 9))
        #expect(throws: InferenceError.cache(.contextOverflow(sequence: 1, needed: 9, contextLength: 8))) {
            try engine.forward(&x, batch: (0 ..< 9).map { BatchToken(sequence: 1, position: $0) }, cache: cache)
        }
        #expect(cache.count(of: 1) == 0)
        var one = try engine.embed([1])
        #expect(throws: InferenceError.cache(.positionGap(sequence: 1, position: 3, expected: 0))) {
            try engine.forward(&one, batch: [BatchToken(sequence: 1, position: 3)], cache: cache)
        }
        var three = try engine.embed([1, 2, 3])
        #expect(throws: InferenceError.cache(.tooManySequences(limit: 2))) {
            try engine.forward(&three, batch: (1 ... 3).map { BatchToken(sequence: SequenceID($0), position: 0) }, cache: cache)
        }
        #expect(throws: InferenceError.tokenOutOfRange(64, vocabularySize: 64)) { _ = try engine.embed([64]) }
        #expect(throws: InferenceError.tokenOutOfRange(-1, vocabularySize: 64)) { _ = try engine.embed([-1]) }
        #expect(throws: InferenceError.layersNotLoaded(requested: 0 ..< 5, loaded: 0 ..< 4)) {
            try engine.forward(&one, batch: [BatchToken(sequence: 1, position: 0)], cache: cache, layers: 0 ..< 5)
        }
    }

    /// A row's result does not depend on the rows batched with it: a sequence whose tokens are
    /// decoded one at a time, and the same sequence run as one batch (as a replay after a lost
    /// worker does), then one more token, give bit-identical logits. On the default model, in
    /// the fast path (the CI runs it at every kernel level).
    @Test func logitsDoNotDependOnTheBatch() throws {
        let path = TestPaths.defaultModel
        let gguf = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: gguf)
        let engine = LlamaEngine(weights: try LlamaWeights(gguf: gguf, layers: 0 ..< config.nLayers, embedding: true, head: true,
                                                           precision: .fast), threads: 2)
        let tokens: [Int32] = [1, 504, 3458, 2723, 28, 253, 1345, 314, 16007, 30, 2, 198, 1, 520, 17, 11, 48, 2054, 3122, 451]
        // One at a time (after a 4-token prompt), with another sequence's rows in each batch.
        let stepwise = engine.makeCache(maxSequences: 4, contextLength: 64)
        var x = try engine.embed(Array(tokens.prefix(4)))
        try engine.forward(&x, batch: (0 ..< 4).map { BatchToken(sequence: 1, position: $0) }, cache: stepwise)
        var last: [Float] = []
        for p in 4 ..< tokens.count {
            var step = try engine.embed([tokens[p]] + Array(tokens.prefix(p % 7 + 1)))
            let batch = [BatchToken(sequence: 1, position: p)] + (0 ... p % 7).map { BatchToken(sequence: 2, position: $0) }
            try engine.forward(&step, batch: batch, cache: stepwise)
            stepwise.release(2)
            last = try engine.logits(step, rows: [0])
        }
        // All but the last as one batch, then the last alone.
        let replayed = engine.makeCache(maxSequences: 4, contextLength: 64)
        var all = try engine.embed(Array(tokens.dropLast()))
        try engine.forward(&all, batch: (0 ..< tokens.count - 1).map { BatchToken(sequence: 1, position: $0) }, cache: replayed)
        var one = try engine.embed([tokens.last!])
        try engine.forward(&one, batch: [BatchToken(sequence: 1, position: tokens.count - 1)], cache: replayed)
        let again = try engine.logits(one, rows: [0])
        #expect(again.count == last.count)
        #expect(zip(again, last).count { $0.bitPattern != $1.bitPattern } == 0, "logits that differ")
    }

    /// A stage lost, its layers taken over by a neighbour that keeps its own KV cache and
    /// rebuilds only the lost layers' (`KVCacheStore.adopt`, `forward(…, rebuilding:)`): from
    /// the rows the neighbour sent the lost stage (it came after), or from the embeddings (it
    /// was the first). The next token's logits are bit-identical to the pipeline undisturbed.
    @Test(arguments: [true, false])
    func keptCachesRebuildTheLostLayers(lostCameAfter: Bool) throws {
        let gguf = try GGUFFile(path: TestPaths.defaultModel)
        let config = try LlamaConfig(gguf: gguf)
        let n = config.nLayers, cut = n / 2
        func engine(_ layers: Range<Int>, ends: Bool) throws -> LlamaEngine {
            LlamaEngine(weights: try LlamaWeights(gguf: gguf, layers: layers, embedding: ends, head: ends, precision: .fast), threads: 2)
        }
        let full = try engine(0 ..< n, ends: true)
        let first = try engine(0 ..< cut, ends: false), second = try engine(cut ..< n, ends: false)
        let tokens: [Int32] = [1, 504, 3458, 2723, 28, 253, 1345, 314, 16007, 30, 2, 198, 1, 520, 17]
        let history = Array(tokens.dropLast()), positions = (0 ..< history.count).map { BatchToken(sequence: 7, position: $0) }
        // Undisturbed: two stages, the history in two batches, then the last token.
        let caches = (first.makeCache(maxSequences: 2, contextLength: 64), second.makeCache(maxSequences: 2, contextLength: 64))
        var sent: [Float] = []
        for part in [0 ..< 9, 9 ..< history.count] {
            var x = try full.embed(Array(history[part]))
            try first.forward(&x, batch: Array(positions[part]), cache: caches.0)
            sent += x
            try second.forward(&x, batch: Array(positions[part]), cache: caches.1)
        }
        var x = try full.embed([tokens.last!])
        let next = [BatchToken(sequence: 7, position: history.count)]
        try first.forward(&x, batch: next, cache: caches.0)
        try second.forward(&x, batch: next, cache: caches.1)
        let undisturbed = try full.logits(x, rows: [0])

        // The survivor takes every layer, keeps its cache (and, as a decode step had started,
        // one position too many, which it leaves behind) and rebuilds the lost layers'.
        let heir = try engine(0 ..< n, ends: false)
        let cache = heir.makeCache(maxSequences: 2, contextLength: 64)
        var input: [Float]
        if lostCameAfter {
            try cache.adopt(caches.0, holding: 0 ..< cut, into: 0 ..< n, lengths: [7: history.count])
            input = sent
            try heir.forward(&input, batch: positions, cache: cache, layers: cut ..< n, rebuilding: true)
        } else {
            try cache.adopt(caches.1, holding: cut ..< n, into: 0 ..< n, lengths: [7: history.count])
            input = try full.embed(history)
            try heir.forward(&input, batch: positions, cache: cache, layers: 0 ..< cut, rebuilding: true)
        }
        #expect(cache.count(of: 7) == history.count)
        var y = try full.embed([tokens.last!])
        try heir.forward(&y, batch: next, cache: cache)
        let recovered = try full.logits(y, rows: [0])
        #expect(zip(recovered, undisturbed).count { $0.bitPattern != $1.bitPattern } == 0, "logits that differ")
        // A position the old cache never held cannot be kept.
        let other = heir.makeCache(maxSequences: 2, contextLength: 64)
        #expect(throws: KVCacheError.self) { try other.adopt(caches.0, holding: 0 ..< cut, into: 0 ..< n, lengths: [7: history.count + 2]) }
        #expect(throws: InferenceError.self) {
            var z = try full.embed([tokens[0]])
            try heir.forward(&z, batch: [BatchToken(sequence: 9, position: 0)], cache: cache, rebuilding: true)
        }
    }
}

/// What the loader refuses, by name.
struct LoaderErrorTests {
    @Test func unsupportedArchitectureIsRefusedByName() throws {
        var w = GGUFWriter()
        w.add(key: "general.architecture", .string("mamba"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("strata-arch-\(UUID()).gguf").path
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: GGUFError.unsupportedArchitecture("mamba")) { try LlamaConfig(gguf: GGUFFile(path: path)) }
    }

    @Test func missingOrMisshapenTensorsAreNamed() throws {
        let path = try TinyModel().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        // Valid file, but ask for a layer range past the model.
        #expect(throws: GGUFError.self) {
            try LlamaWeights(gguf: gguf, layers: 0 ..< 5, embedding: true, head: true, precision: .fast)
        }
        // A model whose q projection has the wrong shape.
        var tiny = TinyModel()
        tiny.nLayers = 1
        let good = try GGUFFile(path: tiny.write())
        var w = GGUFWriter()
        for key in good.keys { w.add(key: key, good.metadata[key]!) }
        for t in good.tensors {
            let bytes = [UInt8](good.data(of: t))
            if t.name == "blk.0.attn_q.weight" {
                try w.addTensor(name: t.name, dims: [t.dims[0], t.dims[1] / 2], type: t.type, data: Array(bytes.prefix(bytes.count / 2)))
            } else if t.name != "blk.0.ffn_up.weight" {
                try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: bytes)
            }
        }
        let badPath = path + ".bad"
        try w.write(to: badPath)
        defer { try? FileManager.default.removeItem(atPath: badPath); try? FileManager.default.removeItem(atPath: good.path) }
        #expect(throws: GGUFError.shapeMismatch(tensor: "blk.0.attn_q.weight", expected: [32, 32], got: [32, 16])) {
            try LlamaWeights(gguf: GGUFFile(path: badPath), layers: 0 ..< 1, embedding: false, head: false, precision: .fast)
        }
    }
}
