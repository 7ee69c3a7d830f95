import Foundation
import QuantKernels
import StrataModel
import Testing
import TestSupport

/// The dispatched kernels (AVX2 on this machine) against the portable scalar reference.
///
/// Tolerance: |fast - ref| <= 1e-5 * M per output, where M = sum_i |w_i| * |x_i| over the
/// dequantized weight row and activation row. Quantized types compute identical integer block sums
/// in both paths, so only float rounding order differs (observed errors are ~1e-7 * M); f32-family
/// types differ by FMA and summation order. A wrong nibble, scale or tile index moves the result
/// by a sizeable fraction of M.
@Suite struct KernelMatmulTests {
    static let weightTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q5_K, .q6_K]
    static let relTol: Float = 1e-5

    @Test(arguments: weightTypes)
    func fastMatchesReference(type: GGMLType) throws {
        var rng = SplitMix64(seed: 0x5EED_0000 + UInt64(type.rawValue))
        let n = type.blockSize == 256 ? 768 : 576      // 3 super-blocks / 18 blocks per row
        let rows = 13, r0 = 1, r1 = 12                 // odd range: hits row-tile edges
        let rowBytes = type.byteCount(elements: n)!
        let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
        let wf = KernelTestData.dequantize(type, weights, count: rows * n)
        let actType = GGMLType(rawValue: qk_activation_type(type.rawValue))!
        let xStride = qk_activation_row_bytes(type.rawValue, Int64(n))
        #expect(xStride == actType.byteCount(elements: n)!)

        for nTok in [1, 3, 8, 17] {
            var x = [UInt8](repeating: 0, count: xStride * nTok)
            for t in 0..<nTok {
                let xf = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
                x.withUnsafeMutableBytes { buf in
                    qk_quantize_activation(type.rawValue, xf, buf.baseAddress! + t * xStride, Int64(n))
                }
            }
            let xq = KernelTestData.dequantize(actType, x, count: nTok * n)
            let yStride = rows + 2
            var fast = [Float](repeating: .nan, count: nTok * yStride)
            var ref = fast
            weights.withUnsafeBytes { w in
                x.withUnsafeBytes { xb in
                    qk_matmul(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                              xb.baseAddress, xStride, Int64(nTok), &fast, Int64(yStride))
                    qk_matmul_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                                  xb.baseAddress, xStride, Int64(nTok), &ref, Int64(yStride))
                }
            }
            var worst: Float = 0
            for t in 0..<nTok {
                for r in 0..<yStride {
                    let i = t * yStride + r
                    guard (r0..<r1).contains(r) else {
                        #expect(fast[i].isNaN && ref[i].isNaN, "\(type) nTok \(nTok): wrote outside rows \(r0)..<\(r1) at row \(r)")
                        continue
                    }
                    var m: Float = 0
                    for k in 0..<n { m += abs(wf[r * n + k]) * abs(xq[t * n + k]) }
                    #expect(m > 0 && m.isFinite)
                    let err = abs(fast[i] - ref[i])
                    worst = max(worst, err / m)
                    #expect(err <= Self.relTol * m, "\(type) nTok \(nTok) row \(r) token \(t): fast \(fast[i]) ref \(ref[i]) M \(m)")
                }
            }
            #expect(worst <= Self.relTol, "\(type) nTok \(nTok): worst relative error \(worst)")
        }
    }

    /// The reference itself against a plain f32 dot product of the dequantized operands, loosely:
    /// the integer paths must compute the same function as dequantize-then-multiply.
    @Test(arguments: weightTypes)
    func referenceMatchesDequantizedProduct(type: GGMLType) {
        var rng = SplitMix64(seed: 0xDEC0_0000 + UInt64(type.rawValue))
        let n = type.blockSize == 256 ? 512 : 256, rows = 4
        let rowBytes = type.byteCount(elements: n)!
        let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
        let wf = KernelTestData.dequantize(type, weights, count: rows * n)
        let actType = GGMLType(rawValue: qk_activation_type(type.rawValue))!
        let xStride = qk_activation_row_bytes(type.rawValue, Int64(n))
        let xf = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        var x = [UInt8](repeating: 0, count: xStride)
        qk_quantize_activation(type.rawValue, xf, &x, Int64(n))
        let xq = KernelTestData.dequantize(actType, x, count: n)
        var y = [Float](repeating: .nan, count: rows)
        weights.withUnsafeBytes { w in
            qk_matmul_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), 0, Int64(rows), x, xStride, 1, &y, Int64(rows))
        }
        for r in 0..<rows {
            var exact: Double = 0, m: Double = 0
            for k in 0..<n {
                exact += Double(wf[r * n + k]) * Double(xq[k])
                m += abs(Double(wf[r * n + k]) * Double(xq[k]))
            }
            // Q8_1's s and Q4_0's offset are folded in through half-precision sums: allow 1e-3 * M.
            #expect(abs(Double(y[r]) - exact) <= 1e-3 * m, "\(type) row \(r): ref \(y[r]) vs dequantized \(exact)")
        }
    }

    @Test func dotAndAxpyMatchPlainLoops() {
        var rng = SplitMix64(seed: 42)
        for n in [0, 1, 7, 8, 31, 64, 100, 1000] {
            let a = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            var plain: Double = 0, m: Double = 0
            for i in 0..<n { plain += Double(a[i] * b[i]); m += Double(abs(a[i] * b[i])) }
            let got = qk_dot_f32(a, b, Int64(n))
            #expect(abs(Double(got) - plain) <= 1e-6 * max(m, 1e-30) + 1e-30, "dot n=\(n): \(got) vs \(plain)")

            var y = b
            let alpha: Float = 0.37
            qk_axpy_f32(alpha, a, &y, Int64(n))
            for i in 0..<n {
                let want = b[i] + alpha * a[i]
                #expect(abs(y[i] - want) <= 1e-6 * (abs(b[i]) + abs(alpha * a[i])), "axpy n=\(n) i=\(i)")
            }
        }
    }

    @Test func dispatcherNamesItsChoice() {
        let isa = String(cString: qk_isa_name())
        // The best level the CPU has, unless STRATA_ISA caps it (as CI's scalar and AVX2 passes do).
        let features = qk_cpu_features()
        var best = "scalar"
        if features & Int32(QK_FEATURE_AVX2) != 0 { best = "avx2" }
        if best == "avx2", features & Int32(QK_FEATURE_AVX512) != 0 {
            best = features & Int32(QK_FEATURE_AVX512VNNI) != 0 ? "avx512vnni" : "avx512"
        }
        let levels = ["scalar", "avx2", "avx512", "avx512vnni"]
        let cap = ProcessInfo.processInfo.environment["STRATA_ISA"].flatMap { levels.firstIndex(of: $0) } ?? levels.count - 1
        #expect(isa == levels[min(levels.firstIndex(of: best)!, cap)])
    }

    @Test func unsupportedTypesAreRefused() {
        var out = [Float](repeating: 0, count: 256)
        let src = [UInt8](repeating: 0, count: 256)
        #expect(qk_dequantize(10, src, &out, 256) == -1)    // Q2_K
        #expect(qk_dequantize(2, src, &out, 31) == -1)      // not a whole block
        #expect(qk_activation_type(10) == UInt32.max)
        #expect(qk_activation_row_bytes(10, 256) == 0)
    }
}
