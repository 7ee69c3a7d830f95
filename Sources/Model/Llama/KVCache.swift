import QuantKernels

/// Identifies a sequence (a conversation or request) across the pipeline.
public typealias SequenceID = UInt64

/// One token of a batch: which sequence it belongs to and its position in that sequence.
public struct BatchToken: Sendable, Hashable {
    public var sequence: SequenceID
    public var position: Int
    public init(sequence: SequenceID, position: Int) {
        self.sequence = sequence
        self.position = position
    }
}

/// Positions `0 ..< length` of each sequence, in order, cut into parts of at most `rows`
/// positions across sequences (a long sequence spans parts): how a cache's positions are sent
/// or run a bounded batch at a time.
public func batchParts(_ lengths: [(sequence: SequenceID, length: Int)], rows: Int) -> [[(sequence: SequenceID, positions: Range<Int>)]] {
    precondition(rows > 0)
    var parts: [[(sequence: SequenceID, positions: Range<Int>)]] = [], part: [(sequence: SequenceID, positions: Range<Int>)] = []
    var filled = 0
    for (sequence, length) in lengths where length > 0 {
        var done = 0
        while done < length {
            let take = min(length - done, rows - filled)
            part.append((sequence, done ..< done + take))
            done += take
            filled += take
            if filled == rows { parts.append(part); part = []; filled = 0 }
        }
    }
    if !part.isEmpty { parts.append(part) }
    return parts
}

public enum KVCacheError: Error, Equatable, CustomStringConvertible {
    case contextOverflow(sequence: SequenceID, needed: Int, contextLength: Int)
    case positionGap(sequence: SequenceID, position: Int, expected: Int)
    case tooManySequences(limit: Int)
    /// The batch needs more pages than the budget has free.
    case outOfPages(needed: Int, free: Int, pageRows: Int)

    public var description: String {
        switch self {
        case let .contextOverflow(seq, needed, ctx):
            "sequence \(seq) needs \(needed) positions, more than the context length \(ctx)"
        case let .positionGap(seq, pos, expected):
            "sequence \(seq): token at position \(pos) does not follow its cache (next position is \(expected))"
        case let .tooManySequences(limit): "too many sequences at once (limit \(limit))"
        case let .outOfPages(needed, free, rows):
            "the KV cache is full: the batch needs \(needed) more pages of \(rows) positions, \(free) are free"
        }
    }
}

/// How keys and values are stored.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// Half precision: llama.cpp's default, half the memory.
    case f16
    case f32

    public var elementBytes: Int { self == .f16 ? 2 : 4 }
}

/// The shape of a stage's KV cache pages: a page holds `rows` consecutive positions of one
/// sequence, keys and values of every layer of the stage, GQA-shaped (nKVHeads × headDim values
/// per position and layer, shared by the query heads of each group).
///
/// Page layout: for each layer, `rows` key rows then `rows` value rows, each row kvDim elements.
public struct KVPageShape: Sendable, Equatable {
    public static let defaultRows = 16
    public let rows: Int
    public let layers: Int
    public let kvDim: Int
    public let type: KVCacheType

    public init(rows: Int = KVPageShape.defaultRows, layers: Int, kvDim: Int, type: KVCacheType = .f16) {
        self.rows = rows; self.layers = layers; self.kvDim = kvDim; self.type = type
    }

    public var rowBytes: Int { kvDim * type.elementBytes }
    public var bytes: Int { layers * 2 * rows * rowBytes }
    /// Where a layer's keys and values start in a page.
    func keyOffset(layer: Int) -> Int { 2 * layer * rows * rowBytes }
    func valueOffset(layer: Int) -> Int { (2 * layer + 1) * rows * rowBytes }

    /// Pages a sequence of `positions` positions holds.
    public func pages(for positions: Int) -> Int { (positions + rows - 1) / rows }

    /// Bytes the pages of one sequence of `positions` positions take.
    public func sequenceBytes(positions: Int) -> Int { pages(for: positions) * bytes }
}

/// The keys and values of one sequence for a stage's layers, in pages of the store's pool.
public final class SequenceCache {
    public let shape: KVPageShape
    public var type: KVCacheType { shape.type }
    public let contextLength: Int
    /// Positions filled.
    public private(set) var count = 0
    /// Page i holds positions i·rows ..< (i+1)·rows: a stable table the attention kernel reads.
    let pageTable: UnsafeMutablePointer<UnsafeRawPointer?>
    public private(set) var pageCount = 0

    init(shape: KVPageShape, contextLength: Int) {
        self.shape = shape
        self.contextLength = contextLength
        let most = shape.pages(for: contextLength)
        pageTable = .allocate(capacity: max(most, 1))
        pageTable.initialize(repeating: nil, count: max(most, 1))
    }

    deinit { pageTable.deallocate() }

    /// Bytes of the pages it holds.
    public var byteCount: Int { pageCount * shape.bytes }

    func append(page: UnsafeMutableRawPointer) {
        pageTable[pageCount] = UnsafeRawPointer(page)
        pageCount += 1
    }

    /// Hands back its pages from index `keep` on.
    func removePages(from keep: Int) -> [UnsafeMutableRawPointer] {
        guard keep < pageCount else { return [] }
        let gone = (keep ..< pageCount).map { UnsafeMutableRawPointer(mutating: pageTable[$0]!) }
        for i in keep ..< pageCount { pageTable[i] = nil }
        pageCount = keep
        return gone
    }

    /// Stores one position's key and value (kvDim floats each) for a layer.
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let page = UnsafeMutableRawPointer(mutating: pageTable[position / shape.rows]!)
        let row = (position % shape.rows) * shape.rowBytes
        let k = page + shape.keyOffset(layer: layer) + row, v = page + shape.valueOffset(layer: layer) + row
        switch type {
        case .f16:
            qk_f32_to_f16(key, k.assumingMemoryBound(to: UInt16.self), Int64(shape.kvDim))
            qk_f32_to_f16(value, v.assumingMemoryBound(to: UInt16.self), Int64(shape.kvDim))
        case .f32:
            k.copyMemory(from: key, byteCount: shape.kvDim * 4)
            v.copyMemory(from: value, byteCount: shape.kvDim * 4)
        }
    }

    func setCount(_ n: Int) { count = n }
}

/// The caches of every sequence passing through a stage, in fixed-size pages from one pool:
/// pages are taken as sequences grow and go back when they are released or rewound, and the
/// pool never holds more than `pageCapacity` pages. So the cache lives within a memory budget
/// whatever the context length and the number of sequences: what runs out is free pages, which
/// `prepare` reports before touching anything (`KVCacheError.outOfPages`).
public final class KVCacheStore {
    public let shape: KVPageShape
    public var type: KVCacheType { shape.type }
    public var layerCount: Int { shape.layers }
    public var kvDim: Int { shape.kvDim }
    public let contextLength: Int
    public let maxSequences: Int
    /// The most pages the pool may hold.
    public let pageCapacity: Int
    public private(set) var sequences: [SequenceID: SequenceCache] = [:]
    /// Pages made so far (resident), free ones among them.
    private var made: [UnsafeMutableRawPointer] = []
    private var free: [UnsafeMutableRawPointer] = []

    /// `pageCapacity`: the budget in pages; by default enough for `maxSequences` sequences at
    /// full context (made only as they are used).
    public init(config: LlamaConfig, layers: Int, maxSequences: Int = 64, contextLength: Int? = nil, type: KVCacheType = .f16,
                pageRows: Int = KVPageShape.defaultRows, pageCapacity: Int? = nil) {
        shape = KVPageShape(rows: pageRows, layers: layers, kvDim: config.kvDim, type: type)
        self.contextLength = min(contextLength ?? config.contextLength, config.contextLength)
        self.maxSequences = maxSequences
        self.pageCapacity = pageCapacity ?? maxSequences * shape.pages(for: self.contextLength)
    }

    deinit { made.forEach { $0.deallocate() } }

    /// Positions a sequence holds (0 for an unknown one).
    public func count(of sequence: SequenceID) -> Int { sequences[sequence]?.count ?? 0 }

    public func release(_ sequence: SequenceID) {
        guard let cache = sequences.removeValue(forKey: sequence) else { return }
        free += cache.removePages(from: 0)
    }

    /// Forgets a sequence's positions from `n` on, handing back the pages it no longer needs.
    public func truncate(_ sequence: SequenceID, to n: Int) {
        guard let cache = sequences[sequence] else { return }
        cache.setCount(min(cache.count, n))
        free += cache.removePages(from: shape.pages(for: cache.count))
    }

    /// Takes over the caches of `old`, the store of a stage that held model layers `oldLayers`
    /// where this one holds `layers` (nil: none): for the layers both hold, the first `length`
    /// positions of each sequence in `lengths` are copied; every other sequence, and every
    /// later position, is left behind. The other layers' rows at those positions hold nothing
    /// meaningful until they are rebuilt (`LlamaEngine.forward(…, rebuilding:)`). Throws,
    /// changing nothing, when `old` lacks a position asked for or the pages do not fit.
    public func adopt(_ old: KVCacheStore?, holding oldLayers: Range<Int>, into layers: Range<Int>,
                      lengths: [SequenceID: Int]) throws(KVCacheError) {
        precondition(layers.count == layerCount && (old == nil || oldLayers.count == old!.layerCount), "layer ranges that are not the stores'")
        precondition(old == nil || (old!.shape.rows == shape.rows && old!.shape.kvDim == shape.kvDim && old!.type == type), "incompatible KV cache stores")
        let both = old == nil ? 0 ..< 0 : oldLayers.clamped(to: layers)
        var need = 0
        for (seq, n) in lengths {
            if let old, !both.isEmpty {
                guard n <= old.count(of: seq) else { throw .positionGap(sequence: seq, position: n, expected: old.count(of: seq)) }
            }
            guard n <= contextLength else { throw .contextOverflow(sequence: seq, needed: n, contextLength: contextLength) }
            need += shape.pages(for: n) - (sequences[seq]?.pageCount ?? 0)
        }
        guard lengths.count <= maxSequences else { throw .tooManySequences(limit: maxSequences) }
        guard need <= freePages else { throw .outOfPages(needed: need, free: freePages, pageRows: shape.rows) }
        for seq in Array(sequences.keys) where lengths[seq] == nil { release(seq) }
        let layerBytes = shape.rows * shape.rowBytes
        for (seq, n) in lengths {
            let to = sequences[seq] ?? SequenceCache(shape: shape, contextLength: contextLength)
            sequences[seq] = to
            truncate(seq, to: n)
            while to.pageCount < shape.pages(for: n) { to.append(page: takePage()) }
            if let from = old?.sequences[seq], !both.isEmpty {
                for page in 0 ..< shape.pages(for: n) {
                    let source = from.pageTable[page]!, target = UnsafeMutableRawPointer(mutating: to.pageTable[page]!)
                    for l in both {
                        let here = l - layers.lowerBound, there = l - oldLayers.lowerBound
                        (target + shape.keyOffset(layer: here)).copyMemory(from: source + old!.shape.keyOffset(layer: there), byteCount: layerBytes)
                        (target + shape.valueOffset(layer: here)).copyMemory(from: source + old!.shape.valueOffset(layer: there), byteCount: layerBytes)
                    }
                }
            }
            to.setCount(n)
        }
    }

    /// Keeps the first `length` positions of each sequence in `lengths` and drops the rest, and
    /// every other sequence.
    public func keep(_ lengths: [SequenceID: Int]) {
        for seq in Array(sequences.keys) {
            if let n = lengths[seq] { truncate(seq, to: n) } else { release(seq) }
        }
    }

    /// The caches of a batch that rewrites positions every sequence already holds (a rebuild of
    /// some of the layers): nothing is taken, rewound or committed.
    func existing(_ batch: [BatchToken]) throws(KVCacheError) -> [SequenceCache] {
        try batch.map { t throws(KVCacheError) in
            guard let cache = sequences[t.sequence], t.position >= 0, t.position < cache.count else {
                throw .positionGap(sequence: t.sequence, position: t.position, expected: count(of: t.sequence))
            }
            return cache
        }
    }

    /// Pages in use by sequences.
    public var pagesInUse: Int { made.count - free.count }
    public var freePages: Int { pageCapacity - pagesInUse }
    /// Bytes of the pages in use.
    public var byteCount: Int { pagesInUse * shape.bytes }
    /// Bytes of every page made (in use or free for reuse): what the cache keeps resident.
    public var residentByteCount: Int { made.count * shape.bytes }

    /// Checks a batch against the caches and makes room for it: each sequence's tokens must be
    /// consecutive, starting at or before the end of its cache (earlier means rewinding), and
    /// fit in the context; the pages they need must be free. Nothing changes when it throws.
    /// Returns the cache of each token, in batch order.
    func prepare(_ batch: [BatchToken]) throws(KVCacheError) -> [SequenceCache] {
        var start: [SequenceID: Int] = [:], next: [SequenceID: Int] = [:]
        for t in batch {
            if let expected = next[t.sequence] {
                guard t.position == expected else { throw .positionGap(sequence: t.sequence, position: t.position, expected: expected) }
            } else {
                let have = count(of: t.sequence)
                guard t.position >= 0, t.position <= have else {
                    throw .positionGap(sequence: t.sequence, position: t.position, expected: have)
                }
                start[t.sequence] = t.position
            }
            guard t.position < contextLength else {
                throw .contextOverflow(sequence: t.sequence, needed: t.position + 1, contextLength: contextLength)
            }
            next[t.sequence] = t.position + 1
        }
        let newSequences = next.keys.filter { sequences[$0] == nil }.count
        guard sequences.count + newSequences <= maxSequences else { throw .tooManySequences(limit: maxSequences) }
        // Pages the batch takes, net of those a rewound sequence hands back.
        var net = 0
        for (seq, end) in next {
            let have = sequences[seq]?.pageCount ?? 0
            let kept = start[seq]! < count(of: seq) ? min(have, shape.pages(for: start[seq]!)) : have
            net += max(0, shape.pages(for: end) - kept) - (have - kept)
        }
        guard net <= freePages else { throw .outOfPages(needed: net, free: freePages, pageRows: shape.rows) }
        for (seq, end) in next {
            let cache = sequences[seq] ?? SequenceCache(shape: shape, contextLength: contextLength)
            sequences[seq] = cache
            if start[seq]! < cache.count { truncate(seq, to: start[seq]!) }
            while cache.pageCount < shape.pages(for: end) { cache.append(page: takePage()) }
        }
        return batch.map { sequences[$0.sequence]! }
    }

    private func takePage() -> UnsafeMutableRawPointer {
        if let page = free.popLast() { return page }
        let page = UnsafeMutableRawPointer.allocate(byteCount: shape.bytes, alignment: 64)
        made.append(page)
        return page
    }

    /// Records that the batch's positions are now filled.
    func commit(_ batch: [BatchToken]) {
        for t in batch { sequences[t.sequence]?.setCount(t.position + 1) }
    }
}
