import Foundation
import QuantKernels
import StrataModel
import Testing
import TestSupport

/// qk_quantize_q16 (16-bit activations) and qk_matmul_q16 (every quantized weight type times them).
/// The dispatched kernels are whatever this CPU runs best (AVX-512 with VNNI, AVX2, scalar);
/// `.ci/run` runs these tests again with STRATA_ISA=avx2 and =scalar so each level is checked.
///
/// q16 block layout (72 bytes): Float d, Float s, Int16 q[32]; x[j] ~= d*q[j], d = amax/32767,
/// s = the block's f32 sum in order.
///
/// Tolerances, per output, with M = sum_k |w_k| * |x_k| (dequantized weights, f32 activations):
/// - fast vs scalar reference: |a - b| <= 1e-5 * M. Both compute the same per-block
///   (dw*dx)*exact-int-sum (+ mw*s); they differ only in f32 summation order (observed ~1e-7 * M).
///   A wrong nibble, scale, row or token moves a result by a sizeable fraction of M.
/// - q16 vs the f32 product on dequantized weights: the product's error is
///   sum_blocks sum_{k in block} |dw*qw_k| * |x_k - dx*qx_k| <= sum_blocks (sum_k |dw*qw_k|) * dx/2
///   (dw*qw_k = w_k for the types without a min; w_k minus the min term for Q4_1, Q5_1, Q4_K and
///   Q5_K, whose min terms use the exact sum s),
///   i.e. at most sum|w| * amax/65534 per block; we allow that plus 1e-5 * M of f32 rounding, and
///   also require the error to be <= 1e-4 * M on activations with outliers.
@Suite struct KernelQ16Tests {
    static let weightTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .q4_K, .q5_K, .q6_K, .iq4_xs]

    /// Row lengths: the usual width, one block, and one with an odd number of blocks.
    /// Row lengths, including one past the AVX-512 GEMM's 4096-element chunk (two chunks).
    static func rowLengths(_ type: GGMLType) -> [Int] { type.blockSize == 256 ? [768, 256, 2304, 4352] : [576, 32, 2080, 4128] }

    /// Offset of the f16 min field a type's blocks carry (the term computed through s), if any.
    static func minOffset(_ type: GGMLType) -> Int? { [.q4_1, .q5_1, .q4_K, .q5_K].contains(type) ? 2 : nil }
    static let blockBytes = 72

    /// Activations in [-1, 1] with about 2% outliers up to +-60 (a block's amax, hence d, grows).
    static func activations(_ count: Int, rng: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in
            let v = Float.random(in: -1...1, using: &rng)
            return Int.random(in: 0..<50, using: &rng) == 0 ? v * 60 : v
        }
    }

    static func quantize(_ x: [Float], n: Int, rows: Int, stride: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0xA5, count: stride * rows)
        out.withUnsafeMutableBytes { dst in
            x.withUnsafeBufferPointer { src in
                for t in 0..<rows {
                    qk_quantize_q16(src.baseAddress! + t * n, dst.baseAddress! + t * stride, Int64(n))
                }
            }
        }
        return out
    }

    /// (d, s, q) of block b of a q16 row.
    static func block(_ bytes: [UInt8], offset: Int) -> (d: Float, s: Float, q: [Int16]) {
        bytes.withUnsafeBytes { p in
            let d = p.loadUnaligned(fromByteOffset: offset, as: Float.self)
            let s = p.loadUnaligned(fromByteOffset: offset + 4, as: Float.self)
            let q = (0..<32).map { p.loadUnaligned(fromByteOffset: offset + 8 + 2 * $0, as: Int16.self) }
            return (d, s, q)
        }
    }

    @Test func rowBytes() {
        #expect(qk_q16_row_bytes(576) == 18 * 72)
        #expect(qk_q16_row_bytes(32) == 72)
        #expect(qk_q16_row_bytes(0) == 0)
    }

    @Test func quantizeRoundTrip() {
        var rng = SplitMix64(seed: 0x0016_0001)
        let n = 32 * 40
        var x = Self.activations(n, rng: &rng)
        for j in 64..<96 { x[j] = 0 }                            // an all-zero block
        for j in 96..<128 { x[j] = Float.random(in: -1e-30...1e-30, using: &rng) }  // tiny values
        x[130] = 12345.678; x[131] = -12345.679                   // amax on both signs
        let bytes = Self.quantize(x, n: n, rows: 1, stride: Int(qk_q16_row_bytes(Int64(n))))
        #expect(bytes.count == n / 32 * Self.blockBytes)
        for b in 0..<(n / 32) {
            let xb = Array(x[(32 * b)..<(32 * b + 32)])
            let (d, s, q) = Self.block(bytes, offset: b * Self.blockBytes)
            let amax = xb.map { abs($0) }.max()!
            #expect(d == amax / 32767, "block \(b): d \(d) amax \(amax)")
            var sum: Float = 0
            for v in xb { sum += v }
            #expect(s == sum, "block \(b): s \(s) expected \(sum)")
            for j in 0..<32 {
                #expect(abs(Int(q[j])) <= 32767)
                // d*q is exact in Double (24-bit d times 16-bit q), so this measures the rounding alone.
                let err = abs(Double(xb[j]) - Double(d) * Double(q[j]))
                #expect(err <= Double(d) * 0.5 * (1 + 1e-9), "block \(b) element \(j): x \(xb[j]) d \(d) q \(q[j])")
            }
            if amax == 0 {
                #expect(d == 0 && s == 0 && q.allSatisfy { $0 == 0 }, "zero block \(b)")
            }
        }
    }

    /// Fast kernel vs scalar reference over odd row ranges, padded strides and batches of 1 to 70
    /// tokens: the decode kernels' tiles of every width, and the GEMM's (from 16 tokens with
    /// AVX-512) one to four token vectors, a second chunk of 64 tokens and rows past a 6-row tile.
    @Test(arguments: weightTypes)
    func fastMatchesReference(type: GGMLType) {
        var rng = SplitMix64(seed: 0x0016_1000 + UInt64(type.rawValue))
        for n in Self.rowLengths(type) {
            let rows = 23, r0 = 1, r1 = 22
            let rowBytes = type.byteCount(elements: n)!
            let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
            let wf = KernelTestData.dequantize(type, weights, count: rows * n)
            for nTok in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64, 70] {
                let xStride = Int(qk_q16_row_bytes(Int64(n))) + 8, yStride = rows + 5
                let x = Self.activations(n * nTok, rng: &rng)
                let xq = Self.quantize(x, n: n, rows: nTok, stride: xStride)
                var fast = [Float](repeating: .nan, count: nTok * yStride)
                var ref = fast
                var rcFast: Int32 = 9, rcRef: Int32 = 9
                weights.withUnsafeBytes { w in
                    xq.withUnsafeBytes { xp in
                        rcFast = qk_matmul_q16(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                                               xp.baseAddress, xStride, Int64(nTok), &fast, Int64(yStride))
                        rcRef = qk_matmul_q16_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), Int64(r0), Int64(r1),
                                                  xp.baseAddress, xStride, Int64(nTok), &ref, Int64(yStride))
                    }
                }
                #expect(rcFast == 0 && rcRef == 0)
                for t in 0..<nTok {
                    for r in 0..<yStride {
                        let i = t * yStride + r
                        guard (r0..<r1).contains(r) else {
                            #expect(fast[i].isNaN && ref[i].isNaN, "\(type) n \(n) nTok \(nTok): wrote row \(r) outside \(r0)..<\(r1)")
                            continue
                        }
                        var m: Double = 0
                        for k in 0..<n { m += Double(abs(wf[r * n + k] * x[t * n + k])) }
                        let err = Double(abs(fast[i] - ref[i]))
                        #expect(m > 0 && err <= 1e-5 * m,
                                "\(type) n \(n) nTok \(nTok) row \(r) token \(t): fast \(fast[i]) ref \(ref[i]) M \(m)")
                    }
                }
            }
        }
    }

    @Test(arguments: weightTypes)
    func accuracyAgainstF32Product(type: GGMLType) {
        var rng = SplitMix64(seed: 0x0016_2000 + UInt64(type.rawValue))
        let n = type.blockSize == 256 ? 768 : 576, rows = 9, nTok = 3
        let rowBytes = type.byteCount(elements: n)!
        let weights = KernelTestData.randomWeights(type, count: rows * n, rng: &rng)
        let wf = KernelTestData.dequantize(type, weights, count: rows * n)
        // dw*qw per element: the weights with the min field zeroed.
        var scaledQ = weights
        if let offset = Self.minOffset(type) {
            for b in stride(from: 0, to: scaledQ.count, by: type.blockBytes) { scaledQ[b + offset] = 0; scaledQ[b + offset + 1] = 0 }
        }
        let wq = KernelTestData.dequantize(type, scaledQ, count: rows * n)
        let x = Self.activations(n * nTok, rng: &rng)
        let xStride = Int(qk_q16_row_bytes(Int64(n)))
        let xq = Self.quantize(x, n: n, rows: nTok, stride: xStride)
        var y16 = [Float](repeating: .nan, count: rows * nTok)
        var y32 = y16
        weights.withUnsafeBytes { w in
            xq.withUnsafeBytes { xp in
                _ = qk_matmul_q16(type.rawValue, w.baseAddress, rowBytes, Int64(n), 0, Int64(rows), xp.baseAddress,
                                  xStride, Int64(nTok), &y16, Int64(rows))
            }
            qk_matmul_f32x_ref(type.rawValue, w.baseAddress, rowBytes, Int64(n), 0, Int64(rows), x, Int64(n),
                               Int64(nTok), &y32, Int64(rows))
        }
        var worst: Double = 0
        for t in 0..<nTok {
            for r in 0..<rows {
                var m: Double = 0, bound: Double = 0
                for b in 0..<(n / 32) {
                    let d = Double(Self.block(xq, offset: t * xStride + b * Self.blockBytes).d)
                    var sw: Double = 0
                    for k in (32 * b)..<(32 * b + 32) {
                        m += Double(abs(wf[r * n + k] * x[t * n + k]))
                        sw += Double(abs(wq[r * n + k]))
                    }
                    bound += sw * d / 2
                }
                let err = Double(abs(y16[t * rows + r] - y32[t * rows + r]))
                worst = max(worst, err / m)
                #expect(err <= bound + 1e-5 * m, "\(type) row \(r) token \(t): q16 \(y16[t * rows + r]) f32 \(y32[t * rows + r]) bound \(bound) M \(m)")
                #expect(err <= 1e-4 * m, "\(type) row \(r) token \(t): error \(err) M \(m)")
            }
        }
        #expect(worst > 0, "\(type): q16 identical to f32 everywhere is suspicious")
    }

    @Test func unsupportedTypesAndShapesLeaveYUntouched() {
        let n = 256
        let weights = [UInt8](repeating: 0x11, count: 4 * n * 4)
        let x = [Float](repeating: 0.5, count: n)
        let xq = Self.quantize(x, n: n, rows: 1, stride: Int(qk_q16_row_bytes(Int64(n))))
        let cases: [(UInt32, Int)] = [
            (GGMLType.f32.rawValue, n), (GGMLType.f16.rawValue, n), (GGMLType.bf16.rawValue, n),
            (GGMLType.q8_1.rawValue, n), (GGMLType.q8_K.rawValue, n), (999, n),
            (GGMLType.q4_1.rawValue, 48), (GGMLType.q8_0.rawValue, 33), (GGMLType.q4_K.rawValue, 320),
            (GGMLType.iq4_xs.rawValue, 32),
        ]
        for (type, len) in cases {
            for useRef in [false, true] {
                var y = [Float](repeating: .nan, count: 4)
                let rc = weights.withUnsafeBytes { w in
                    xq.withUnsafeBytes { xp in
                        useRef
                            ? qk_matmul_q16_ref(type, w.baseAddress, 1024, Int64(len), 0, 4, xp.baseAddress, xq.count, 1, &y, 4)
                            : qk_matmul_q16(type, w.baseAddress, 1024, Int64(len), 0, 4, xp.baseAddress, xq.count, 1, &y, 4)
                    }
                }
                #expect(rc == -1, "type \(type) n \(len) ref \(useRef)")
                #expect(y.allSatisfy { $0.isNaN }, "type \(type) n \(len) ref \(useRef) wrote Y")
            }
        }
    }

    /// The engine takes the q16 product where the dispatcher says: for every batch size (a row's
    /// result must not depend on its batch), for the types with kernels at this level (all with
    /// AVX-512, three with AVX2), never for types it does not take.
    @Test func preferredPathFollowsTheKernelLevel() {
        let isa = String(cString: qk_isa_name())
        for type in GGMLType.allCases {
            for nTok in [1, 8, 16, 17, 64] {
                let preferred = qk_q16_preferred(type.rawValue, Int64(nTok)) != 0
                guard Self.weightTypes.contains(type) else {
                    #expect(!preferred, "\(type) nTok \(nTok)")
                    continue
                }
                switch isa {
                case "avx512", "avx512vnni": #expect(preferred, "\(type) nTok \(nTok) on \(isa)")
                case "avx2": #expect(preferred == [.q4_0, .q4_1, .q8_0].contains(type), "\(type) nTok \(nTok) on avx2")
                default: #expect(preferred, "\(type) nTok \(nTok) on \(isa)")
                }
            }
        }
    }

    @Test func supportsEveryQuantizedWeightType() {
        for type in GGMLType.allCases {
            let expected = Self.weightTypes.contains(type)
            #expect((qk_q16_supports(type.rawValue) != 0) == expected, "\(type)")
        }
    }
}
