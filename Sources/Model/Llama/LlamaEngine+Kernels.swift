import Foundation
import QuantKernels

/// The small element-wise steps of the decoder layer, on one token's vectors.
enum Ops {
    /// out = x / sqrt(mean(x²) + eps) · g   (RMSNorm, Zhang & Sennrich 2019), summed in double as ggml does.
    static func rmsNorm(_ x: UnsafePointer<Float>, _ g: [Float], _ out: UnsafeMutablePointer<Float>, n: Int, eps: Float) {
        g.withUnsafeBufferPointer { rmsNorm(x, $0.baseAddress!, out, n: n, eps: eps) }
    }

    static func rmsNorm(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, n: Int, eps: Float) {
        var sum: Double = 0
        for i in 0 ..< n { sum += Double(x[i] * x[i]) }
        let scale = 1 / (Float(sum / Double(n)) + eps).squareRoot()
        for i in 0 ..< n { out[i] = (x[i] * scale) * g[i] }
    }

    /// Rotates adjacent pairs (v[i], v[i+1]) of the first `ropeDim` dims of each head by
    /// position·θᵢ (RoPE, Su et al. 2021, laid out as GGUF's llama tensors are).
    static func rope(_ v: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, table: UnsafePointer<Float>, pairs: Int) {
        for h in 0 ..< heads {
            let p = v + h * headDim
            for i in 0 ..< pairs {
                let c = table[2 * i], s = table[2 * i + 1]
                let x0 = p[2 * i], x1 = p[2 * i + 1]
                p[2 * i] = x0 * c - x1 * s
                p[2 * i + 1] = x0 * s + x1 * c
            }
        }
    }

    /// (cos, sin) of position·θᵢ for each pair, θᵢ = base^(-2i/ropeDim) / freqFactor[i],
    /// computed the way ggml does (θ scaled step by step in f32).
    static func ropeTable(position: Int, config: LlamaConfig, freqFactors: [Float]?, into table: UnsafeMutablePointer<Float>) {
        let pairs = config.ropeDim / 2
        let thetaScale = powf(config.ropeTheta, -2 / Float(config.ropeDim))
        var theta = Float(position)
        for i in 0 ..< pairs {
            let t = theta / (freqFactors?[i] ?? 1)
            table[2 * i] = cosf(t)
            table[2 * i + 1] = sinf(t)
            theta *= thetaScale
        }
    }

    /// x[t][r] += y[t][r] for the columns `rows` of `count` rows of `width` (a residual add of
    /// the part of a matrix product one thread computed).
    static func addRows(_ y: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, rows: Range<Int>, width: Int, count: Int) {
        for t in 0 ..< count {
            for r in rows { x[t * width + r] += y[t * width + r] }
        }
    }

    /// a = silu(a) · b   (SwiGLU's gate), silu(x) = x / (1 + e^-x).
    static func swiGLU(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, n: Int) {
        for i in 0 ..< n {
            let x = a[i]
            a[i] = x / (1 + expf(-x)) * b[i]
        }
    }
}
