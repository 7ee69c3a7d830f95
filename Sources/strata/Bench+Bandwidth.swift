import QuantKernels
import StrataModel

extension LlamaEngine {
    /// The matrices one decode step reads in full: every layer's seven and the output head.
    var decodeMatrices: [Matrix] {
        weights.layers.flatMap { [$0.wq, $0.wk, $0.wv, $0.wo, $0.w1, $0.w3, $0.w2] } + (weights.output.map { [$0] } ?? [])
    }

    /// Bytes one decode step reads from weights.
    var decodeWeightBytes: Int { decodeMatrices.reduce(0) { $0 + $1.byteCount } }

    /// GB/s of a plain read of those same bytes, split over the compute threads as the products
    /// split them: the ceiling a decode step (which reads each weight once) can reach.
    func weightReadBandwidth(repetitions: Int = 3) -> Double {
        let matrices = decodeMatrices
        let pool = pool
        let clock = ContinuousClock()
        var runs: [Double] = []
        for _ in 0 ..< repetitions {
            let start = clock.now
            for m in matrices {
                pool.run { tid in
                    let rows = pool.share(of: m.rows, thread: tid, granule: 16)
                    guard !rows.isEmpty else { return }
                    _ = qk_read_bytes(m.data + rows.lowerBound * m.rowBytes, rows.count * m.rowBytes)
                }
            }
            runs.append(Double(decodeWeightBytes) / (clock.now - start).totalSeconds / 1e9)
        }
        return median(runs)
    }
}
