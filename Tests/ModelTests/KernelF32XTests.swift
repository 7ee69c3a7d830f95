import Foundation
import QuantKernels
import StrataModel
import Testing
import TestSupport

/// qk_matmul_f32x (weights in their stored type times f32 activations) against its scalar reference,
/// and the reference against an f32 product on qk_dequantize'd weights.
///
/// Tolerance: |a - b| <= 1e-5 * M per output, M = sum_k |w_k| * |x_k| over the dequantized weight
/// row and the activation row. Both sides compute the same f32 function; they differ only in
/// summation order and FMA rounding (observed ~2e-7 * M). A wrong nibble, scale, row or token
/// index moves a result by a sizeable fraction of M.
@Suite struct KernelF32XTests {
    static let weightTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .iq4_nl, .q4_K, .q5_K, .q6_K, .iq4_xs]
    static let relTol: Double = 1e-5

    /// Row lengths per type: the usual width, one that needs two 1024-element chunks, one block.
    static func rowLengths(_ type: GGMLType) -> [Int] {
        switch type.blockSize {
        case 256: [768, 2304, 256]
        case 32: [576, 2080, 32]
        default: [576, 1037, 5]
        }
    }

    @Test(arguments: weightTypes)
    func fastMatchesReference(type: GGMLType) {
        var rng = SplitMix64(seed: 0xF32F_0000 + UInt64(type.rawValue))
        for n in Self.rowLengths(type) {
            let rows = 23, r0 = 1, r1 = 22                 // odd range: full 4-row tiles and a remainder
            let rowBytes = type.byteCount(elements: n)!
            let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng, scale: 1)
            let wf = KernelTestData.dequantize(type, weights, count: rows * n)
            for nTok in [1, 2, 3, 5, 8, 17, 64] {
                let xStride = n + 3, yStride = rows + 5       // padded strides
                let x = (0..<(xStride * nTok)).map { _ in Float.random(in: -2...2, using: &rng) }
                var fast = [Float](repeating: .nan, count: nTok * yStride)
                var ref = fast
                weights.withUnsafeBytes { w in
                    qk_matmul_f32x(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                                   x, Int64(xStride), Int64(nTok), &fast, Int64(yStride))
                    qk_matmul_f32x_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                                       x, Int64(xStride), Int64(nTok), &ref, Int64(yStride))
                }
                var worst: Double = 0
                for t in 0..<nTok {
                    for r in 0..<yStride {
                        let i = t * yStride + r
                        guard (r0..<r1).contains(r) else {
                            #expect(fast[i].isNaN && ref[i].isNaN, "\(type) n \(n) nTok \(nTok): wrote row \(r) outside \(r0)..<\(r1)")
                            continue
                        }
                        var m: Double = 0
                        for k in 0..<n { m += Double(abs(wf[r * n + k] * x[t * xStride + k])) }
                        let err = Double(abs(fast[i] - ref[i]))
                        worst = max(worst, err / m)
                        #expect(m > 0 && err <= Self.relTol * m,
                                "\(type) n \(n) nTok \(nTok) row \(r) token \(t): fast \(fast[i]) ref \(ref[i]) M \(m)")
                    }
                }
                #expect(worst <= Self.relTol, "\(type) n \(n) nTok \(nTok): worst relative error \(worst)")
            }
        }
    }

    @Test(arguments: weightTypes)
    func referenceMatchesDequantizedProduct(type: GGMLType) {
        var rng = SplitMix64(seed: 0xF32D_0000 + UInt64(type.rawValue))
        let n = type.blockSize == 256 ? 512 : 256, rows = 5, nTok = 3
        let rowBytes = type.byteCount(elements: n)!
        let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
        let wf = KernelTestData.dequantize(type, weights, count: rows * n)
        let x = (0..<(n * nTok)).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = [Float](repeating: .nan, count: rows * nTok)
        weights.withUnsafeBytes { w in
            qk_matmul_f32x_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), 0, Int64(rows), x, Int64(n),
                               Int64(nTok), &y, Int64(rows))
        }
        for t in 0..<nTok {
            for r in 0..<rows {
                var exact: Double = 0, m: Double = 0
                for k in 0..<n {
                    let p = Double(wf[r * n + k]) * Double(x[t * n + k])
                    exact += p
                    m += abs(p)
                }
                #expect(abs(Double(y[t * rows + r]) - exact) <= Self.relTol * m,
                        "\(type) row \(r) token \(t): ref \(y[t * rows + r]) vs dequantized \(exact)")
            }
        }
    }

    /// The fast path on the model's shapes, split across "threads" in 16-row ranges as the engine
    /// does, must equal one call over all rows.
    @Test func rowSplitsAgree() {
        var rng = SplitMix64(seed: 0xF325_0001)
        for type in [GGMLType.q4_1, .q8_0] {
            let n = 576, rows = 96
            let rowBytes = type.byteCount(elements: n)!
            let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
            for nTok in [1, 7] {
                let x = (0..<(n * nTok)).map { _ in Float.random(in: -1...1, using: &rng) }
                var whole = [Float](repeating: .nan, count: rows * nTok)
                var split = whole
                weights.withUnsafeBytes { w in
                    qk_matmul_f32x(type.rawValue, w.baseAddress, rowBytes, Int64(n), 0, Int64(rows), x, Int64(n),
                                   Int64(nTok), &whole, Int64(rows))
                    for r0 in stride(from: 0, to: rows, by: 16) {
                        qk_matmul_f32x(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r0 + 16),
                                       x, Int64(n), Int64(nTok), &split, Int64(rows))
                    }
                }
                #expect(whole == split, "\(type) nTok \(nTok)")
            }
        }
    }

    @Test func unsupportedTypeLeavesOutputUntouched() {
        let w = [UInt8](repeating: 0, count: 256)
        let x = [Float](repeating: 1, count: 256)
        var y: [Float] = [42]
        qk_matmul_f32x(10, w, 84, 256, 0, 1, x, 256, 1, &y, 1)      // Q2_K
        qk_matmul_f32x_ref(10, w, 84, 256, 0, 1, x, 256, 1, &y, 1)
        qk_matmul_f32x(2, w, 18, 31, 0, 1, x, 32, 1, &y, 1)      // not a whole block
        #expect(y == [42])
    }
}
