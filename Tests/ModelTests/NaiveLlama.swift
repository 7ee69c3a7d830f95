import Foundation
import QuantKernels
import StrataModel

/// A deliberately plain Llama forward pass in Double — no cache, no batching, no SIMD, causal
/// attention over the whole prefix — written straight from the papers, as an independent oracle
/// for the engine (RMSNorm: Zhang & Sennrich 2019; RoPE on adjacent pairs: Su et al. 2021;
/// GQA: Ainslie et al. 2023; SwiGLU).
struct NaiveLlama {
    let c: LlamaConfig
    let gguf: GGUFFile

    init(path: String) throws {
        gguf = try GGUFFile(path: path)
        c = try LlamaConfig(gguf: gguf)
    }

    /// A tensor as Doubles, rows of `cols`.
    func tensor(_ name: String) -> [Double] {
        let info = gguf.tensorInfo(name)!
        var out = [Float](repeating: 0, count: info.elementCount)
        _ = qk_dequantize(info.type.rawValue, gguf.data(of: info).baseAddress!, &out, Int64(info.elementCount))
        return out.map(Double.init)
    }

    /// y = W x for W (rows, cols) row-major.
    func matvec(_ w: [Double], _ x: [Double], rows: Int) -> [Double] {
        let cols = x.count
        return (0 ..< rows).map { r in (0 ..< cols).reduce(0) { $0 + w[r * cols + $1] * x[$1] } }
    }

    func rmsNorm(_ x: [Double], _ g: [Double]) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let s = 1 / (ms + Double(c.normEps)).squareRoot()
        return zip(x, g).map { $0 * s * $1 }
    }

    func rope(_ v: inout [Double], heads: Int, position: Int) {
        let factors = gguf.tensorInfo("rope_freqs.weight") != nil ? tensor("rope_freqs.weight") : nil
        for h in 0 ..< heads {
            for i in stride(from: 0, to: c.ropeDim, by: 2) {
                let theta = Double(position) * pow(Double(c.ropeTheta), -Double(i) / Double(c.ropeDim)) / (factors?[i / 2] ?? 1)
                let a = v[h * c.headDim + i], b = v[h * c.headDim + i + 1]
                v[h * c.headDim + i] = a * cos(theta) - b * sin(theta)
                v[h * c.headDim + i + 1] = a * sin(theta) + b * cos(theta)
            }
        }
    }

    /// Logits at every position of `tokens`: (tokens.count, vocab).
    func logits(_ tokens: [Int32]) -> [[Double]] {
        let embd = tensor("token_embd.weight")
        var xs = tokens.map { Array(embd[Int($0) * c.dim ..< (Int($0) + 1) * c.dim]) }
        for l in 0 ..< c.nLayers {
            let wq = tensor("blk.\(l).attn_q.weight"), wk = tensor("blk.\(l).attn_k.weight")
            let wv = tensor("blk.\(l).attn_v.weight"), wo = tensor("blk.\(l).attn_output.weight")
            let w1 = tensor("blk.\(l).ffn_gate.weight"), w2 = tensor("blk.\(l).ffn_down.weight")
            let w3 = tensor("blk.\(l).ffn_up.weight")
            let attnNorm = tensor("blk.\(l).attn_norm.weight"), ffnNorm = tensor("blk.\(l).ffn_norm.weight")
            var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for (p, x) in xs.enumerated() {
                let h = rmsNorm(x, attnNorm)
                var q = matvec(wq, h, rows: c.qDim), k = matvec(wk, h, rows: c.kvDim)
                rope(&q, heads: c.nHeads, position: p)
                rope(&k, heads: c.nKVHeads, position: p)
                qs.append(q); ks.append(k); vs.append(matvec(wv, h, rows: c.kvDim))
            }
            for p in xs.indices {
                var att = [Double](repeating: 0, count: c.qDim)
                for h in 0 ..< c.nHeads {
                    let kvh = h / (c.nHeads / c.nKVHeads)
                    var scores = (0 ... p).map { s in
                        (0 ..< c.headDim).reduce(0) { $0 + qs[p][h * c.headDim + $1] * ks[s][kvh * c.headDim + $1] } / Double(c.headDim).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { exp($0 - m) }
                    let sum = scores.reduce(0, +)
                    for s in 0 ... p {
                        for i in 0 ..< c.headDim { att[h * c.headDim + i] += scores[s] / sum * vs[s][kvh * c.headDim + i] }
                    }
                }
                let o = matvec(wo, att, rows: c.dim)
                xs[p] = zip(xs[p], o).map(+)
                let h = rmsNorm(xs[p], ffnNorm)
                let g = matvec(w1, h, rows: c.hiddenDim), u = matvec(w3, h, rows: c.hiddenDim)
                let act = zip(g, u).map { $0 / (1 + exp(-$0)) * $1 }
                xs[p] = zip(xs[p], matvec(w2, act, rows: c.dim)).map(+)
            }
        }
        let out = gguf.tensorInfo("output.weight") != nil ? tensor("output.weight") : embd
        let norm = tensor("output_norm.weight")
        return xs.map { matvec(out, rmsNorm($0, norm), rows: c.vocabSize) }
    }
}
