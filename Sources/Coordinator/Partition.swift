import Foundation
import StrataModel

/// How the coordinator cuts the decoder layers into contiguous stages, one per worker.
public enum PartitionStrategy: Sendable, Equatable, CustomStringConvertible {
    /// Layers in proportion to the memory each worker offers (the default).
    case memory
    /// The same number of layers for every worker (the first ones take the remainder).
    case even
    /// Exactly these ranges, in worker order.
    case explicit([Range<Int>])

    /// Parses `memory`, `even` or `explicit:0-9,10-19,20-29` (inclusive layer numbers).
    public init(parsing text: String) throws(PartitionError) {
        switch text {
        case "memory": self = .memory
        case "even": self = .even
        default:
            guard text.hasPrefix("explicit:") else { throw .syntax("'\(text)': expected memory, even or explicit:A-B,C-D,…") }
            var ranges: [Range<Int>] = []
            for part in text.dropFirst("explicit:".count).split(separator: ",") {
                let ends = part.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count == 2, let a = Int(ends[0]), let b = Int(ends[1]), a >= 0, b >= a else {
                    throw .syntax("'\(part)' in '\(text)': expected FIRST-LAST layer numbers, e.g. 0-9")
                }
                ranges.append(a ..< b + 1)
            }
            guard !ranges.isEmpty else { throw .syntax("'\(text)': no layer ranges") }
            self = .explicit(ranges)
        }
    }

    public var description: String {
        switch self {
        case .memory: "memory"
        case .even: "even"
        case let .explicit(r): "explicit:" + r.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ",")
        }
    }
}

public enum PartitionError: Error, Equatable, CustomStringConvertible {
    case syntax(String)
    case tooManyWorkers(workers: Int, layers: Int)
    case wrongStageCount(ranges: Int, workers: Int)
    case notCovering(ranges: [Range<Int>], layers: Int)
    /// `needs[i]` bytes for stage i against `offers[i]`.
    case doesNotFit(stage: Int, layers: Range<Int>, needs: UInt64, offers: UInt64)
    case modelTooLarge(needs: UInt64, offers: UInt64)

    public var description: String {
        switch self {
        case let .syntax(s): "bad --partition: \(s)"
        case let .tooManyWorkers(w, l): "\(w) workers for a model of \(l) layers: each worker needs at least one layer"
        case let .wrongStageCount(r, w): "--partition names \(r) ranges for \(w) workers"
        case let .notCovering(r, l):
            "--partition \(r.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ",")) does not cover layers 0-\(l - 1) exactly once, in order"
        case let .doesNotFit(s, _, n, o):
            "stage \(s) needs \(formatBytes(n)) (weights and KV cache) but its worker offers \(formatBytes(o))"
        case let .modelTooLarge(n, o):
            "the model does not fit: its layers and KV cache need \(formatBytes(n)), the workers offer \(formatBytes(o)) in all"
        }
    }
}

/// Cuts `layerBytes.count` layers into one contiguous stage per worker.
///
/// `layerBytes[l]` is what layer l costs a worker (weights plus its KV cache); `memory[w]` what
/// worker w offers. Every strategy yields ranges that cover `0..<layers` exactly, in order, and
/// is checked against the memory each worker offers.
/// What each layer costs the worker that holds it, at least: its weights (`weights[l]` bytes)
/// and the KV cache of one sequence of `context` positions. What a worker has beyond its
/// layers' cost holds more sequences (its KV cache takes the rest of its memory, in pages).
public func layerCosts(weights: [Int], kvDim: Int, context: Int) -> [UInt64] {
    let kv = KVPageShape(layers: 1, kvDim: kvDim).sequenceBytes(positions: context)
    return weights.map { UInt64($0 + kv) }
}

public func partitionLayers(_ strategy: PartitionStrategy, layerBytes: [UInt64], memory: [UInt64]) throws(PartitionError) -> [Range<Int>] {
    let n = layerBytes.count, w = memory.count
    guard w <= n else { throw .tooManyWorkers(workers: w, layers: n) }
    let ranges: [Range<Int>]
    switch strategy {
    case let .explicit(r):
        guard r.count == w else { throw .wrongStageCount(ranges: r.count, workers: w) }
        var next = 0
        for range in r {
            guard range.lowerBound == next, !range.isEmpty else { throw .notCovering(ranges: r, layers: n) }
            next = range.upperBound
        }
        guard next == n else { throw .notCovering(ranges: r, layers: n) }
        ranges = r
    case .even:
        ranges = (0 ..< w).map { i in (n * i / w) ..< (n * (i + 1) / w) }
    case .memory:
        let total = layerBytes.reduce(0, +), offered = memory.reduce(0, +)
        guard total <= offered else { throw .modelTooLarge(needs: total, offers: offered) }
        ranges = memoryWeighted(layerBytes: layerBytes, memory: memory)
    }
    for (i, r) in ranges.enumerated() {
        let needs = r.reduce(UInt64(0)) { $0 + layerBytes[$1] }
        guard needs <= memory[i] else { throw .doesNotFit(stage: i, layers: r, needs: needs, offers: memory[i]) }
    }
    return ranges
}

/// Boundaries where the cumulative layer cost crosses each worker's cumulative share of the
/// memory, then moved so that every stage has at least one layer and none exceeds its worker's
/// memory where a neighbour has room.
private func memoryWeighted(layerBytes: [UInt64], memory: [UInt64]) -> [Range<Int>] {
    let n = layerBytes.count, w = memory.count
    let total = Double(layerBytes.reduce(0, +)), offered = Double(memory.reduce(0, +))
    var bounds = [0]
    var cumulativeMemory = 0.0, cost = 0.0, layer = 0
    for i in 0 ..< w - 1 {
        cumulativeMemory += Double(memory[i])
        let target = total * cumulativeMemory / offered
        // Take layers while the midpoint of the next one stays under the target.
        while layer < n && cost + Double(layerBytes[layer]) / 2 <= target {
            cost += Double(layerBytes[layer])
            layer += 1
        }
        // At least one layer for this stage, and one left for each stage after it.
        layer = min(max(layer, bounds[i] + 1), n - (w - 1 - i))
        cost = layerBytes[0 ..< layer].reduce(0.0) { $0 + Double($1) }
        bounds.append(layer)
    }
    bounds.append(n)
    // Shift a boundary left while its stage is over its worker's memory and the next has room.
    for _ in 0 ..< n * w {
        var moved = false
        for i in 0 ..< w {
            let r = bounds[i] ..< bounds[i + 1]
            let needs = r.reduce(UInt64(0)) { $0 + layerBytes[$1] }
            guard needs > memory[i], r.count > 1 else { continue }
            if i + 1 < w {
                let nextNeeds = (bounds[i + 1] - 1 ..< bounds[i + 2]).reduce(UInt64(0)) { $0 + layerBytes[$1] }
                if nextNeeds <= memory[i + 1] { bounds[i + 1] -= 1; moved = true; continue }
            }
            if i > 0 {
                let prevNeeds = (bounds[i - 1] ..< bounds[i] + 1).reduce(UInt64(0)) { $0 + layerBytes[$1] }
                if prevNeeds <= memory[i - 1] { bounds[i] += 1; moved = true }
            }
        }
        if !moved { break }
    }
    return (0 ..< w).map { bounds[$0] ..< bounds[$0 + 1] }
}

/// Bytes for people: "512 B", "64 KiB", "98.3 MiB", "7.2 GiB".
public func formatBytes(_ n: UInt64) -> String {
    switch n {
    case ..<1024: "\(n) B"
    case ..<(1 << 20): n % 1024 == 0 ? "\(n >> 10) KiB" : String(format: "%.1f KiB", Double(n) / 1024)
    case ..<(1 << 30): String(format: "%.1f MiB", Double(n) / Double(1 << 20))
    default: String(format: "%.1f GiB", Double(n) / Double(1 << 30))
    }
}
