import Foundation
import QuantKernels
import Testing
import TestSupport

/// The f16 helpers of the KV cache: conversion against Swift's own Float16 (round to nearest
/// even), and the fast products against the scalar references.
struct KernelF16Tests {
    @Test func conversionRoundsToNearestEven() {
        var rng = SplitMix64(seed: 16)
        var values: [Float] = [0, -0, 1, -1, 65504, 65520, 1e6, -1e6, .infinity, -.infinity, 6e-8, 3e-8, 2.9e-8, 1e-9,
                               Float(bitPattern: 0x3880_0000), Float(bitPattern: 0x387F_FFFF), 1.0009765625, 1.00048828125]
        for _ in 0 ..< 20_000 {
            // Random bit patterns across the whole f32 range, and values near f16's range.
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
            values.append(Float.random(in: -70000 ... 70000, using: &rng) * (Bool.random(using: &rng) ? 1 : 1e-6))
        }
        values = values.filter { !$0.isNaN }
        var fast = [UInt16](repeating: 0, count: values.count), ref = fast
        qk_f32_to_f16(values, &fast, Int64(values.count))
        qk_f32_to_f16_ref(values, &ref, Int64(values.count))
        let want = values.map { Float16($0).bitPattern }
        #expect(fast == want)
        #expect(ref == want)
    }

    /// Fast dot and axpy against the scalar ones, |Δ| ≤ 1e-5 · Σ|a||b| (only the order of the
    /// f32 additions differs).
    @Test(arguments: [1, 7, 8, 15, 16, 64, 100])
    func productsMatchReference(n: Int) {
        var rng = SplitMix64(seed: UInt64(n))
        let a = (0 ..< n).map { _ in Float.random(in: -2 ... 2, using: &rng) }
        let b = (0 ..< n).map { _ in Float16(Float.random(in: -2 ... 2, using: &rng)).bitPattern }
        let scale = zip(a, b).reduce(Float(0)) { $0 + abs($1.0 * Float(Float16(bitPattern: $1.1))) }
        #expect(abs(qk_dot_f32_f16(a, b, Int64(n)) - qk_dot_f32_f16_ref(a, b, Int64(n))) <= 1e-5 * scale + 1e-30)
        let exact = zip(a, b).reduce(Double(0)) { $0 + Double($1.0) * Double(Float(Float16(bitPattern: $1.1))) }
        #expect(abs(Double(qk_dot_f32_f16_ref(a, b, Int64(n))) - exact) <= 1e-5 * Double(scale) + 1e-30)

        var y1 = (0 ..< n).map { _ in Float.random(in: -1 ... 1, using: &rng) }, y2 = y1
        qk_axpy_f16(0.37, b, &y1, Int64(n))
        qk_axpy_f16_ref(0.37, b, &y2, Int64(n))
        for i in 0 ..< n { #expect(abs(y1[i] - y2[i]) <= 1e-6) }
    }
}

/// One head's attention: the dispatched kernel against the scalar one and against a plain
/// softmax-weighted sum in Double, for f16 and f32 caches.
@Test(arguments: [1, 2, 17, 100])
func attendHeadMatchesPlainAttention(n: Int) {
    var rng = SplitMix64(seed: UInt64(n) &* 31)
    let headDim = 64, stride = 192
    let q = (0 ..< headDim).map { _ in Float.random(in: -1 ... 1, using: &rng) }
    let k32 = (0 ..< n * stride).map { _ in Float(Float16(Float.random(in: -1 ... 1, using: &rng))) }
    let v32 = (0 ..< n * stride).map { _ in Float(Float16(Float.random(in: -1 ... 1, using: &rng))) }
    let scale: Float = 0.125

    var want = [Double](repeating: 0, count: headDim)
    var scores = (0 ..< n).map { p in (0 ..< headDim).reduce(0.0) { $0 + Double(q[$1]) * Double(k32[p * stride + $1]) } * Double(scale) }
    let m = scores.max()!
    scores = scores.map { Foundation.exp($0 - m) }
    let sum = scores.reduce(0, +)
    for p in 0 ..< n { for i in 0 ..< headDim { want[i] += scores[p] / sum * Double(v32[p * stride + i]) } }

    var scratch = [Float](repeating: 0, count: n)
    for isF16 in [true, false] {
        var fast = [Float](repeating: 0, count: headDim), ref = fast
        // The rows in pages of `rows` positions, keys then values in each page (as KVCacheStore
        // lays them out), against one page holding them all.
        let elem = isF16 ? 2 : 4
        func paged(_ rows: Int) -> [UnsafeMutableRawPointer] {
            Swift.stride(from: 0, to: n, by: rows).map { p0 in
                let page = UnsafeMutableRawPointer.allocate(byteCount: 2 * rows * stride * elem, alignment: 64)
                for r in 0 ..< min(rows, n - p0) {
                    for i in 0 ..< stride {
                        let (k, v) = (k32[(p0 + r) * stride + i], v32[(p0 + r) * stride + i])
                        if isF16 {
                            page.storeBytes(of: Float16(k).bitPattern, toByteOffset: (r * stride + i) * 2, as: UInt16.self)
                            page.storeBytes(of: Float16(v).bitPattern, toByteOffset: ((rows + r) * stride + i) * 2, as: UInt16.self)
                        } else {
                            page.storeBytes(of: k, toByteOffset: (r * stride + i) * 4, as: Float.self)
                            page.storeBytes(of: v, toByteOffset: ((rows + r) * stride + i) * 4, as: Float.self)
                        }
                    }
                }
                return page
            }
        }
        for rows in [n, 4, 16] {
            let pages = paged(rows)
            defer { pages.forEach { $0.deallocate() } }
            let table: [UnsafeRawPointer?] = pages.map { UnsafeRawPointer($0) }
            let valueOffset = Int64(rows * stride * elem)
            qk_attend_head(q, table, Int64(rows), 0, valueOffset, Int64(n), Int64(headDim), Int64(stride), scale, &scratch, &fast,
                           isF16 ? 1 : 0)
            qk_attend_head_ref(q, table, Int64(rows), 0, valueOffset, Int64(n), Int64(headDim), Int64(stride), scale, &scratch,
                               &ref, isF16 ? 1 : 0)
            for i in 0 ..< headDim {
                #expect(abs(fast[i] - ref[i]) < 1e-5, "rows \(rows)")
                #expect(abs(Double(fast[i]) - want[i]) < 1e-5, "rows \(rows)")
            }
        }
    }
}
