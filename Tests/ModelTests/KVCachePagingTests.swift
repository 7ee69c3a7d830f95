import Foundation
import StrataModel
import TestSupport
import Testing

/// The KV cache in pages from a bounded pool: taken as sequences grow, handed back when they
/// are released or rewound, refused (changing nothing) when the pool is out of pages.
struct KVCachePagingTests {
    static let prompt: [Int32] = (0 ..< 37).map { Int32($0 * 7 % 60) }

    private func fill(_ engine: LlamaEngine, _ cache: KVCacheStore, sequence: SequenceID, from: Int = 0, count: Int) throws {
        var x = try engine.embed(Array(Self.prompt.prefix(count).suffix(count - from)))
        try engine.forward(&x, batch: (from ..< count).map { BatchToken(sequence: sequence, position: $0) }, cache: cache)
    }

    @Test func pagesAreTakenAndHandedBack() throws {
        let path = try TinyModel().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        let cache = KVCacheStore(config: engine.config, layers: engine.weights.layerRange.count, maxSequences: 8, pageRows: 16,
                                 pageCapacity: 5)
        try fill(engine, cache, sequence: 1, count: 20)  // 2 pages
        try fill(engine, cache, sequence: 2, count: 33)  // 3 pages
        #expect(cache.pagesInUse == 5 && cache.freePages == 0)
        #expect(cache.byteCount == 5 * cache.shape.bytes)

        // Out of pages: refused before anything changes.
        #expect(throws: InferenceError.cache(.outOfPages(needed: 1, free: 0, pageRows: 16))) {
            try fill(engine, cache, sequence: 3, count: 1)
        }
        #expect(throws: InferenceError.cache(.outOfPages(needed: 1, free: 0, pageRows: 16))) {
            try fill(engine, cache, sequence: 1, from: 20, count: 33)  // position 32 opens sequence 1's third page
        }
        #expect(cache.sequences[3] == nil && cache.count(of: 1) == 20 && cache.pagesInUse == 5)

        // Positions within a page already held need none.
        try fill(engine, cache, sequence: 1, from: 20, count: 32)
        #expect(cache.count(of: 1) == 32 && cache.pagesInUse == 5)

        cache.release(1)
        #expect(cache.freePages == 2)
        try fill(engine, cache, sequence: 3, count: 17)  // 2 pages, from the ones sequence 1 gave back
        #expect(cache.freePages == 0 && cache.residentByteCount == 5 * cache.shape.bytes)

        cache.truncate(2, to: 10)  // keeps 1 page of 3
        #expect(cache.count(of: 2) == 10 && cache.freePages == 2)
        // Rewinding in a batch hands back pages first: 37 positions from 0 take 3 pages.
        try fill(engine, cache, sequence: 2, count: 37)
        #expect(cache.count(of: 2) == 37 && cache.freePages == 0)
    }

    /// Attention reads the same positions whatever the page size: logits are bit for bit those
    /// of one page holding the whole sequence, decoding token by token after a prompt.
    @Test(arguments: [KVCacheType.f32, .f16])
    func pageSizeDoesNotChangeTheOutput(kv: KVCacheType) throws {
        let path = try TinyModel().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let engine = try TinyModel.engine(path: path)
        func logits(pageRows: Int) throws -> [Float] {
            let cache = KVCacheStore(config: engine.config, layers: engine.weights.layerRange.count, maxSequences: 1, type: kv,
                                     pageRows: pageRows)
            var out: [Float] = []
            var x = try engine.embed(Array(Self.prompt.prefix(9)))
            try engine.forward(&x, batch: (0 ..< 9).map { BatchToken(sequence: 1, position: $0) }, cache: cache)
            out += try engine.logits(x, rows: [8])
            for p in 9 ..< Self.prompt.count {
                var x = try engine.embed([Self.prompt[p]])
                try engine.forward(&x, batch: [BatchToken(sequence: 1, position: p)], cache: cache)
                out += try engine.logits(x, rows: [0])
            }
            return out
        }
        let whole = try logits(pageRows: 64)
        for rows in [1, 4, 16] { #expect(try logits(pageRows: rows) == whole, "page rows \(rows)") }
    }
}
