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

public enum KVCacheError: Error, Equatable, CustomStringConvertible {
    case contextOverflow(sequence: SequenceID, needed: Int, contextLength: Int)
    case positionGap(sequence: SequenceID, position: Int, expected: Int)
    case tooManySequences(limit: Int)

    public var description: String {
        switch self {
        case let .contextOverflow(seq, needed, ctx):
            "sequence \(seq) needs \(needed) positions, more than the context length \(ctx)"
        case let .positionGap(seq, pos, expected):
            "sequence \(seq): token at position \(pos) does not follow its cache (next position is \(expected))"
        case let .tooManySequences(limit): "too many sequences at once (limit \(limit))"
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

/// The keys and values of one sequence for a range of layers, GQA-shaped: each position holds
/// nKVHeads × headDim values per layer, shared by the query heads of each group.
/// Storage grows by doubling up to the context length.
public final class SequenceCache {
    public let type: KVCacheType
    public let kvDim: Int
    public let contextLength: Int
    /// Positions filled.
    public private(set) var count = 0
    private(set) var capacity = 0
    /// Per layer (relative to the stage's first layer): (capacity, kvDim) elements of `type`.
    private(set) var keys: [UnsafeMutableRawPointer]
    private(set) var values: [UnsafeMutableRawPointer]

    init(type: KVCacheType, layers: Int, kvDim: Int, contextLength: Int) {
        self.type = type
        self.kvDim = kvDim
        self.contextLength = contextLength
        keys = []
        values = []
        keys.reserveCapacity(layers)
        values.reserveCapacity(layers)
        for _ in 0 ..< layers {
            keys.append(.allocate(byteCount: 0, alignment: 64))
            values.append(.allocate(byteCount: 0, alignment: 64))
        }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Bytes held for keys and values.
    public var byteCount: Int { keys.count * 2 * capacity * kvDim * type.elementBytes }

    /// Makes room for positions `0..<n`.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        let newCapacity = min(contextLength, max(n, capacity * 2, 16))
        for l in keys.indices {
            for isKey in [true, false] {
                let old = isKey ? keys[l] : values[l]
                let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * kvDim * type.elementBytes, alignment: 64)
                fresh.copyMemory(from: old, byteCount: count * kvDim * type.elementBytes)
                old.deallocate()
                if isKey { keys[l] = fresh } else { values[l] = fresh }
            }
        }
        capacity = newCapacity
    }

    /// Stores one position's key and value (kvDim floats each) for a layer.
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let offset = position * kvDim * type.elementBytes
        switch type {
        case .f16:
            qk_f32_to_f16(key, (keys[layer] + offset).assumingMemoryBound(to: UInt16.self), Int64(kvDim))
            qk_f32_to_f16(value, (values[layer] + offset).assumingMemoryBound(to: UInt16.self), Int64(kvDim))
        case .f32:
            (keys[layer] + offset).copyMemory(from: key, byteCount: kvDim * 4)
            (values[layer] + offset).copyMemory(from: value, byteCount: kvDim * 4)
        }
    }

    /// Forgets positions from `n` on (rewinding the sequence).
    func truncate(to n: Int) { count = min(count, n) }

    func setCount(_ n: Int) { count = n }
}

/// The caches of every sequence passing through a stage, bounded in number and in length.
public final class KVCacheStore {
    public let type: KVCacheType
    public let layerCount: Int
    public let kvDim: Int
    public let contextLength: Int
    public let maxSequences: Int
    public private(set) var sequences: [SequenceID: SequenceCache] = [:]

    public init(config: LlamaConfig, layers: Int, maxSequences: Int = 64, contextLength: Int? = nil, type: KVCacheType = .f16) {
        self.type = type
        layerCount = layers
        kvDim = config.kvDim
        self.contextLength = min(contextLength ?? config.contextLength, config.contextLength)
        self.maxSequences = maxSequences
    }

    /// Positions a sequence holds (0 for an unknown one).
    public func count(of sequence: SequenceID) -> Int { sequences[sequence]?.count ?? 0 }

    public func release(_ sequence: SequenceID) { sequences[sequence] = nil }

    /// Forgets a sequence's positions from `n` on.
    public func truncate(_ sequence: SequenceID, to n: Int) { sequences[sequence]?.truncate(to: n) }

    public var byteCount: Int { sequences.values.reduce(0) { $0 + $1.byteCount } }

    /// Checks a batch against the caches and makes room for it: each sequence's tokens must be
    /// consecutive, starting at or before the end of its cache (earlier means rewinding), and
    /// fit in the context. Returns the cache of each token, in batch order.
    func prepare(_ batch: [BatchToken]) throws(KVCacheError) -> [SequenceCache] {
        var next: [SequenceID: Int] = [:]
        for t in batch {
            if let expected = next[t.sequence] {
                guard t.position == expected else { throw .positionGap(sequence: t.sequence, position: t.position, expected: expected) }
            } else {
                let have = count(of: t.sequence)
                guard t.position >= 0, t.position <= have else {
                    throw .positionGap(sequence: t.sequence, position: t.position, expected: have)
                }
            }
            guard t.position < contextLength else {
                throw .contextOverflow(sequence: t.sequence, needed: t.position + 1, contextLength: contextLength)
            }
            next[t.sequence] = t.position + 1
        }
        let newSequences = next.keys.filter { sequences[$0] == nil }.count
        guard sequences.count + newSequences <= maxSequences else { throw .tooManySequences(limit: maxSequences) }
        for (seq, end) in next {
            let cache = sequences[seq] ?? SequenceCache(type: type, layers: layerCount, kvDim: kvDim, contextLength: contextLength)
            sequences[seq] = cache
            cache.reserve(end)
        }
        return batch.map { sequences[$0.sequence]! }
    }

    /// Records that the batch's positions are now filled.
    func commit(_ batch: [BatchToken]) {
        for t in batch { sequences[t.sequence]?.setCount(t.position + 1) }
    }
}
