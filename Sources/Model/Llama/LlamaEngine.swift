import QuantKernels

public enum InferenceError: Error, Equatable, CustomStringConvertible {
    case cache(KVCacheError)
    case layersNotLoaded(requested: Range<Int>, loaded: Range<Int>)
    case missingEmbedding
    case missingHead
    case tokenOutOfRange(Int32, vocabularySize: Int)
    case hiddenSize(expected: Int, got: Int)
    case emptyBatch

    public var description: String {
        switch self {
        case let .cache(e): e.description
        case let .layersNotLoaded(requested, loaded): "layers \(requested) requested, but this stage holds \(loaded)"
        case .missingEmbedding: "this stage does not hold the token embedding"
        case .missingHead: "this stage does not hold the output head"
        case let .tokenOutOfRange(id, n): "token id \(id) is outside the vocabulary (0..<\(n))"
        case let .hiddenSize(expected, got): "activations hold \(got) floats; expected \(expected)"
        case .emptyBatch: "empty batch"
        }
    }
}

/// Runs the Llama decoder over a contiguous range of layers, on a batch of tokens from one or
/// several sequences at their own positions — exactly what a pipeline stage runs — plus the
/// embedding and the output head when the stage holds them.
///
/// Not thread-safe: one caller at a time drives it; it spreads each step over its `ComputePool`.
public final class LlamaEngine {
    public let weights: LlamaWeights
    public let pool: ComputePool
    public var config: LlamaConfig { weights.config }

    // Scratch, grown to the largest batch seen. Shapes per batch of nTok tokens:
    private var xb = ScratchBuffer()      // (nTok, dim)          normed input of a sub-layer
    private var q = ScratchBuffer()       // (nTok, qDim)         queries
    private var k = ScratchBuffer()       // (nTok, kvDim)        keys of the batch
    private var v = ScratchBuffer()       // (nTok, kvDim)        values of the batch
    private var attn = ScratchBuffer()    // (nTok, qDim)         attention output, heads concatenated
    private var hb = ScratchBuffer()      // (nTok, hiddenDim)    gate, then SwiGLU
    private var hb2 = ScratchBuffer()     // (nTok, hiddenDim)    up
    private var out = ScratchBuffer()     // (nTok, dim)          sub-layer output before the residual add
    private var scores = ScratchBuffer()  // (threads, contextLength) attention scores per thread
    private var rope = ScratchBuffer()    // (nTok, ropeDim)      cos/sin per token
    private var quantized: [UInt32: ScratchBuffer] = [:]  // activations in each weight type's 8-bit format (.q8)
    private var q16 = ScratchBuffer()     // (nTok, q16 row) decode activations in 16-bit fixed point (.fast)

    /// `idleSpin`: how long the compute threads spin between forward passes before they block
    /// (see `ComputePool`).
    public init(weights: LlamaWeights, threads: Int, idleSpin: Duration = .milliseconds(5)) {
        self.weights = weights
        self.pool = ComputePool(threads: threads, idleSpin: idleSpin)
    }

    deinit {
        for b in [xb, q, k, v, attn, hb, hb2, out, scores, rope, q16] { b.free() }
        quantized.values.forEach { $0.free() }
    }

    /// Makes a KV cache store shaped for this stage's layers; `pageCapacity` bounds its pages
    /// (by default, room for `maxSequences` sequences at full context, made as they are used).
    public func makeCache(maxSequences: Int = 64, contextLength: Int? = nil, type: KVCacheType = .f16,
                          pageCapacity: Int? = nil) -> KVCacheStore {
        KVCacheStore(config: config, layers: weights.layerRange.count, maxSequences: maxSequences,
                     contextLength: contextLength, type: type, pageCapacity: pageCapacity)
    }

    // MARK: Embedding

    /// The embeddings of `tokens`: (tokens.count, dim).
    public func embed(_ tokens: [Int32]) throws(InferenceError) -> [Float] {
        guard let table = weights.tokenEmbedding else { throw .missingEmbedding }
        let dim = config.dim
        var x = [Float](repeating: 0, count: tokens.count * dim)
        for id in tokens where id < 0 || Int(id) >= table.rows {
            throw .tokenOutOfRange(id, vocabularySize: table.rows)
        }
        x.withUnsafeMutableBufferPointer { x in
            for (i, id) in tokens.enumerated() { table.dequantizeRow(Int(id), into: x.baseAddress! + i * dim) }
        }
        return x
    }

    // MARK: Decoder layers

    /// Runs `layers` (by default all this stage holds) over `hidden`, (batch.count, dim), in place,
    /// reading and extending each sequence's KV cache. `rebuilding`: the positions are ones the
    /// cache holds, and only `layers`' rows of them are written again (the layers a stage took
    /// over from a lost one); the cache neither grows nor rewinds. Returns the hidden states
    /// entering each layer of `taps` inside `layers` (a boundary a stage logs).
    @discardableResult
    public func forward(_ hidden: inout [Float], batch: [BatchToken], cache: KVCacheStore, layers: Range<Int>? = nil,
                        rebuilding: Bool = false, taps: Set<Int> = []) throws(InferenceError) -> [Int: [Float]] {
        let layers = layers ?? weights.layerRange
        guard !batch.isEmpty else { throw .emptyBatch }
        guard layers.lowerBound >= weights.layerRange.lowerBound, layers.upperBound <= weights.layerRange.upperBound else {
            throw .layersNotLoaded(requested: layers, loaded: weights.layerRange)
        }
        guard hidden.count == batch.count * config.dim else { throw .hiddenSize(expected: batch.count * config.dim, got: hidden.count) }
        let caches: [SequenceCache]
        do { caches = rebuilding ? try cache.existing(batch) : try cache.prepare(batch) } catch { throw .cache(error) }
        var tapped: [Int: [Float]] = [:]
        hidden.withUnsafeMutableBufferPointer { x in
            let positions = batch.map(\.position)
            fillRopeTables(positions)
            for l in layers {
                if l != layers.lowerBound && taps.contains(l) { tapped[l] = Array(x) }
                layer(l, x: x.baseAddress!, positions: positions, caches: caches)
            }
        }
        if !rebuilding { cache.commit(batch) }
        return tapped
    }

    private func fillRopeTables(_ positions: [Int]) {
        let table = rope.floats(positions.count * config.ropeDim)
        for (i, p) in positions.enumerated() {
            Ops.ropeTable(position: p, config: config, freqFactors: weights.ropeFreqFactors, into: table + i * config.ropeDim)
        }
    }

    /// One decoder layer on x: (nTok, dim), in place.
    private func layer(_ l: Int, x: UnsafeMutablePointer<Float>, positions: [Int], caches: [SequenceCache]) {
        let c = config
        let w = weights.layers[l - weights.layerRange.lowerBound]
        let cacheLayer = l - weights.layerRange.lowerBound
        let nTok = positions.count
        let xb = xb.floats(nTok * c.dim), q = q.floats(nTok * c.qDim)
        let k = k.floats(nTok * c.kvDim), v = v.floats(nTok * c.kvDim)
        let attn = attn.floats(nTok * c.qDim), out = out.floats(nTok * c.dim)
        let hb = hb.floats(nTok * c.hiddenDim), hb2 = hb2.floats(nTok * c.hiddenDim)
        let scores = scores.floats(pool.threadCount * caches.map(\.contextLength).max()!)
        let ropeTable = UnsafePointer(rope.floats(nTok * c.ropeDim))

        // Attention: x += wo · attention(rope(wq·norm(x)), rope(wk·norm(x)), wv·norm(x))
        perToken(nTok) { t in Ops.rmsNorm(x + t * c.dim, w.attnNorm, xb + t * c.dim, n: c.dim, eps: c.normEps) }
        matmul([(w.wq, q), (w.wk, k), (w.wv, v)], input: xb, nTok: nTok)
        let pairs = c.ropeDim / 2
        perToken(nTok) { t in
            let table = ropeTable + t * c.ropeDim
            Ops.rope(q + t * c.qDim, heads: c.nHeads, headDim: c.headDim, table: table, pairs: pairs)
            Ops.rope(k + t * c.kvDim, heads: c.nKVHeads, headDim: c.headDim, table: table, pairs: pairs)
            caches[t].store(layer: cacheLayer, position: positions[t], key: k + t * c.kvDim, value: v + t * c.kvDim)
        }

        // Grouped-query attention: query head h reads key/value head h / kvMul of its sequence's cache.
        let scale = 1 / Float(c.headDim).squareRoot()
        let stride = caches.map(\.contextLength).max()!
        let pool = pool
        pool.run { tid in
            for job in pool.share(of: nTok * c.nHeads, thread: tid) {
                let t = job / c.nHeads, h = job % c.nHeads
                let cache = caches[t], shape = cache.shape
                // Pages of (positions, kvDim) rows; this head reads columns kvHead·headDim ..< +headDim.
                let column = (h / c.kvMul) * c.headDim * shape.type.elementBytes
                qk_attend_head(q + t * c.qDim + h * c.headDim, cache.pageTable, Int64(shape.rows),
                               Int64(shape.keyOffset(layer: cacheLayer) + column), Int64(shape.valueOffset(layer: cacheLayer) + column),
                               Int64(positions[t] + 1), Int64(c.headDim), Int64(c.kvDim), scale, scores + tid * stride,
                               attn + t * c.qDim + h * c.headDim, shape.type == .f16 ? 1 : 0)
            }
        }
        matmul([(w.wo, out)], input: attn, nTok: nTok) { rows in
            Ops.addRows(out, into: x, rows: rows, width: c.dim, count: nTok)
        }

        // Feed-forward: x += w2 · (silu(w1·norm(x)) ⊙ w3·norm(x))
        perToken(nTok) { t in Ops.rmsNorm(x + t * c.dim, w.ffnNorm, xb + t * c.dim, n: c.dim, eps: c.normEps) }
        matmul([(w.w1, hb), (w.w3, hb2)], input: xb, nTok: nTok) { rows in
            for t in 0 ..< nTok {
                Ops.swiGLU(hb + t * c.hiddenDim + rows.lowerBound, hb2 + t * c.hiddenDim + rows.lowerBound, n: rows.count)
            }
        }
        matmul([(w.w2, out)], input: hb, nTok: nTok) { rows in
            Ops.addRows(out, into: x, rows: rows, width: c.dim, count: nTok)
        }
    }

    /// Runs `body(t)` for every token of the batch: on the pool when the batch is large enough
    /// to be worth it, here otherwise (decode).
    private func perToken(_ nTok: Int, _ body: (Int) -> Void) {
        guard nTok >= 4 else {
            for t in 0 ..< nTok { body(t) }
            return
        }
        let pool = pool
        pool.run { tid in
            for t in pool.share(of: nTok, thread: tid) { body(t) }
        }
    }

    /// outputs[j] = matrices[j] · input for nTok input rows, chunks of rows spread over the pool's
    /// threads. Outputs are (nTok, rows) row-major. Matrices share `input`'s width. `epilogue(rows)`
    /// runs right after a chunk's rows are written in every output, for element-wise work on them
    /// (the matrices then have equal row counts).
    private func matmul(_ jobs: [(Matrix, UnsafeMutablePointer<Float>)], input: UnsafeMutablePointer<Float>, nTok: Int,
                        epilogue: ((Range<Int>) -> Void)? = nil) {
        let pool = pool
        switch weights.precision {
        case .fast where jobs.allSatisfy({ qk_q16_preferred($0.0.type.rawValue, Int64(nTok)) != 0 }):
            // Activations to 16-bit fixed point (error ≤ amax/65534 per block of 32) for integer
            // multiply-adds: decode kernels that read each weight block once for all rows, and
            // with AVX-512 a blocked GEMM for prompts.
            let cols = jobs[0].0.cols
            let rowBytes = qk_q16_row_bytes(Int64(cols))
            let xq = q16.reserve(bytes: nTok * rowBytes)
            if nTok >= pool.threadCount * 4 {
                pool.run { tid in
                    for t in pool.share(of: nTok, thread: tid) { qk_quantize_q16(input + t * cols, xq + t * rowBytes, Int64(cols)) }
                }
            } else {
                for t in 0 ..< nTok { qk_quantize_q16(input + t * cols, xq + t * rowBytes, Int64(cols)) }
            }
            forEachRowChunk(jobs.map(\.0.rows), epilogue: epilogue) { j, r in
                let (m, out) = jobs[j]
                qk_matmul_q16(m.type.rawValue, m.data, m.rowBytes, Int64(m.cols), Int64(r.lowerBound), Int64(r.upperBound),
                              xq, rowBytes, Int64(nTok), out, Int64(m.rows))
            }
        case .q8 where jobs.allSatisfy({ qk_activation_type($0.0.type.rawValue) != UInt32.max }):
            matmulQ8(jobs, input: input, nTok: nTok, epilogue: epilogue)
        case .fast, .f32, .q8:
            // f32 activations; also .q8 for weight types without an 8-bit product (Q5_0, IQ4_NL, …).
            forEachRowChunk(jobs.map(\.0.rows), epilogue: epilogue) { j, r in
                let (m, out) = jobs[j]
                qk_matmul_f32x(m.type.rawValue, m.data, m.rowBytes, Int64(m.cols), Int64(r.lowerBound), Int64(r.upperBound),
                               input, Int64(m.cols), Int64(nTok), out, Int64(m.rows))
            }
        }
    }

    /// `.q8`: activations quantized to 8 bits as llama.cpp does, integer products.
    private func matmulQ8(_ jobs: [(Matrix, UnsafeMutablePointer<Float>)], input: UnsafeMutablePointer<Float>, nTok: Int,
                          epilogue: ((Range<Int>) -> Void)?) {
        let pool = pool
        let cols = jobs[0].0.cols
        var prepared: [UInt32: (UnsafeRawPointer, Int)] = [:]  // by activation format
        let operands = jobs.map { m, out in
            let format = qk_activation_type(m.type.rawValue)
            let x = prepared[format] ?? quantize(input, nTok: nTok, cols: cols, for: m.type)
            prepared[format] = x
            return (m, out, x)
        }
        forEachRowChunk(jobs.map(\.0.rows), epilogue: epilogue) { j, r in
            let (m, out, (xq, stride)) = operands[j]
            qk_matmul(m.type.rawValue, m.data, m.rowBytes, Int64(m.cols), Int64(r.lowerBound), Int64(r.upperBound),
                      xq, stride, Int64(nTok), out, Int64(m.rows))
        }
    }

    /// Runs `product(j, rows)` over chunks of the rows of jobs with `rowCounts`, the chunks handed
    /// out to the pool's threads as they come free (`ComputePool.run(units:)`), four or so per
    /// thread: the threads finish together even when one of them runs slower for a while. Chunks
    /// are multiples of 48 rows (whole 8- and 16-row decode tiles, 6-row GEMM tiles). With an
    /// `epilogue` the jobs have equal row counts and a chunk covers the same rows of every job,
    /// then `epilogue(rows)` runs on them at once.
    private func forEachRowChunk(_ rowCounts: [Int], epilogue: ((Range<Int>) -> Void)?,
                                 _ product: (_ job: Int, _ rows: Range<Int>) -> Void) {
        let granule = 48
        let perThread = pool.threadCount == 1 ? 1 : 4
        let chunk = max(granule, (rowCounts[0] / (pool.threadCount * perThread) + granule - 1) / granule * granule)
        func rows(_ i: Int, of count: Int) -> Range<Int> { i * chunk ..< min(count, (i + 1) * chunk) }
        if let epilogue {
            let count = rowCounts[0]
            precondition(rowCounts.allSatisfy { $0 == count }, "an epilogue needs equal row counts")
            pool.run(units: (count + chunk - 1) / chunk) { unit in
                let r = rows(unit, of: count)
                for j in rowCounts.indices { product(j, r) }
                epilogue(r)
            }
        } else {
            let chunks = rowCounts.map { ($0 + chunk - 1) / chunk }
            pool.run(units: chunks.reduce(0, +)) { unit in
                var j = 0, i = unit
                while i >= chunks[j] { i -= chunks[j]; j += 1 }
                product(j, rows(i, of: rowCounts[j]))
            }
        }
    }

    /// `input` (nTok, cols) in the format the weight type's 8-bit product reads (for `.q8`),
    /// or as it is when that format is f32.
    private func quantize(_ input: UnsafeMutablePointer<Float>, nTok: Int, cols: Int, for type: GGMLType) -> (UnsafeRawPointer, Int) {
        let format = qk_activation_type(type.rawValue)
        if format == GGMLType.f32.rawValue { return (UnsafeRawPointer(input), cols * 4) }
        let rowBytes = qk_activation_row_bytes(type.rawValue, Int64(cols))
        var buffer = quantized[format] ?? ScratchBuffer()
        let base = buffer.reserve(bytes: nTok * rowBytes)
        quantized[format] = buffer
        let pool = pool
        pool.run { tid in
            for t in pool.share(of: nTok, thread: tid) {
                qk_quantize_activation(type.rawValue, input + t * cols, base + t * rowBytes, Int64(cols))
            }
        }
        return (UnsafeRawPointer(base), rowBytes)
    }

    // MARK: Output head

    /// Final RMSNorm and output head for the given rows of `hidden` (rows of dim floats):
    /// logits, (rows.count, vocabularySize).
    public func logits(_ hidden: [Float], rows: [Int]) throws(InferenceError) -> [Float] {
        guard let output = weights.output, let norm = weights.outputNorm else { throw .missingHead }
        let dim = config.dim
        guard hidden.count % dim == 0, rows.allSatisfy({ $0 >= 0 && $0 < hidden.count / dim }) else {
            throw .hiddenSize(expected: (rows.max() ?? 0 + 1) * dim, got: hidden.count)
        }
        let n = rows.count
        let xb = xb.floats(n * dim)
        hidden.withUnsafeBufferPointer { h in
            norm.withUnsafeBufferPointer { g in
                for (i, r) in rows.enumerated() {
                    Ops.rmsNorm(h.baseAddress! + r * dim, g.baseAddress!, xb + i * dim, n: dim, eps: config.normEps)
                }
            }
        }
        var result = [Float](repeating: 0, count: n * output.rows)
        result.withUnsafeMutableBufferPointer { r in
            matmul([(output, r.baseAddress!)], input: xb, nTok: n)
        }
        return result
    }
}
