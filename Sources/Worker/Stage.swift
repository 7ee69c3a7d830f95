import Foundation
import StrataModel
import StrataWire

/// A worker's assigned share of the model, loaded: its layers' weights, the engine that runs
/// them and the KV cache of every sequence passing through. Made on the loader thread, then
/// used by the compute thread alone (hence `@unchecked Sendable`).
public final class Stage: @unchecked Sendable {
    let assign: Assign
    let layers: Range<Int>
    let engine: LlamaEngine
    let cache: KVCacheStore
    let file: GGUFFile
    var isLast: Bool { assign.stageIndex + 1 == assign.stageCount }

    /// Whether the compute threads block as soon as a batch has moved on.
    let parksBetweenBatches: Bool

    /// The activations that reached each boundary the stage logs, by sequence: rows of `dim`
    /// floats, one per position. With f32 activations (the rows the next stage received
    /// exactly), a stage logs where its layers end (what it sends on) unless it is the last,
    /// and keeps logging where the layers of a stage it took over began. From these a
    /// neighbour rebuilds the KV cache of layers that move to it (`KeptCaches`).
    private(set) var logs: [Int: [SequenceID: [Float]]] = [:]
    private(set) var logPoints: Set<Int> = []
    /// Positions still to come in `rebuild` forwards, by sequence: a batch of a sequence whose
    /// rebuild is not through fails rather than read a cache that holds nothing.
    private var awaitingRebuild: [SequenceID: Int] = [:]

    init(file: GGUFFile, assign: Assign, threads: Int, precision: Precision, sharedCores: Bool, kvPages: Int) throws(GGUFError) {
        self.assign = assign
        self.file = file
        layers = Int(assign.layerStart) ..< Int(assign.layerEnd)
        let weights = try LlamaWeights(gguf: file, layers: layers, embedding: false, head: false, precision: precision)
        // With cores of its own a stage keeps its threads spinning between batches, as one
        // process does between tokens; sharing them with other stages, it gives them up.
        parksBetweenBatches = sharedCores
        engine = LlamaEngine(weights: weights, threads: threads, idleSpin: sharedCores ? .microseconds(200) : .milliseconds(5))
        cache = engine.makeCache(maxSequences: Int(assign.maxSequences), contextLength: Int(assign.contextLength),
                                 pageCapacity: kvPages)
        if assign.activationType == .f32 && !isLast { logPoints = [layers.upperBound] }
    }

    /// The stage `old` runs, under a new assignment of the same layers of the same model: its
    /// weights and engine kept, its KV cache new and empty.
    init(keeping old: Stage, assign: Assign, kvPages: Int) {
        self.assign = assign
        file = old.file
        layers = old.layers
        parksBetweenBatches = old.parksBetweenBatches
        engine = old.engine
        cache = engine.makeCache(maxSequences: Int(assign.maxSequences), contextLength: Int(assign.contextLength),
                                 pageCapacity: kvPages)
        if assign.activationType == .f32 && !isLast { logPoints = [layers.upperBound] }
    }

    /// Forgets a sequence: its KV cache and its logs.
    func release(_ sequence: SequenceID) {
        cache.release(sequence)
        awaitingRebuild[sequence] = nil
        for p in logs.keys { logs[p]![sequence] = nil }
    }

    /// Takes over what `keep` names from `old`, this worker's stage of an earlier plan (nil: it
    /// had none, and every layer is rebuilt): the KV cache of the layers both hold and the logs
    /// at the boundaries this stage logs, for the positions kept. Layers that follow `old`'s are
    /// rebuilt from its log where they begin (`rebuildFromLog`). Returns the `rebuild` forwards
    /// for the next stage (`sendOn`): the log where this stage's layers end.
    func adopt(_ old: Stage?, keep: KeptCaches) throws(WireErrorMessage) -> [Activations] {
        let lengths = Dictionary(keep.sequences.map { ($0.sequence, Int($0.length)) }, uniquingKeysWith: { a, _ in a })
        let rebuilt = keep.rebuild
        let kept = old.map { $0.layers.clamped(to: layers) } ?? 0 ..< 0
        guard kept.count + rebuilt.count == layers.count else {
            throw WireErrorMessage(code: .notAssigned, message: "stage \(assign.stageIndex) keeps layers \(kept) and rebuilds \(rebuilt): not its layers \(layers)")
        }
        do {
            try cache.adopt(old?.cache, holding: old?.layers ?? 0 ..< 0, into: layers, lengths: lengths)
        } catch {
            throw WireErrorMessage(code: .outOfMemory, message: "stage \(assign.stageIndex) cannot keep the caches of plan \(keep.fromPlan): \(error)")
        }
        let dim = engine.config.dim
        if assign.activationType == .f32 {
            logPoints = Set(old?.logPoints.filter { layers.lowerBound < $0 && $0 < layers.upperBound } ?? [])
            if !isLast { logPoints.insert(layers.upperBound) }
            for p in logPoints {
                guard let log = old?.logs[p] else { continue }
                logs[p] = Dictionary(uniqueKeysWithValues: lengths.compactMap { seq, n in log[seq].map { (seq, Array($0.prefix(n * dim))) } })
            }
        }
        if keep.rebuildFromLog && !rebuilt.isEmpty {
            guard let old, let log = old.logs[rebuilt.lowerBound] else {
                throw WireErrorMessage(code: .internal, message: "stage \(assign.stageIndex) has no log of what reaches layer \(rebuilt.lowerBound)")
            }
            // The log's rows, `batchRows` positions at a time, through the layers taken over.
            for part in chunks(lengths) {
                var hidden: [Float] = []
                for (seq, positions) in part {
                    guard let rows = log[seq], rows.count >= positions.upperBound * dim else {
                        throw WireErrorMessage(code: .internal, message: "stage \(assign.stageIndex) logged fewer than \(positions.upperBound) positions of sequence \(seq)")
                    }
                    hidden += rows[positions.lowerBound * dim ..< positions.upperBound * dim]
                }
                try rebuildLayers(&hidden, part.flatMap { seq, positions in positions.map { BatchToken(sequence: seq, position: $0) } })
            }
        }
        if !keep.rebuildFromLog && !rebuilt.isEmpty { awaitingRebuild = lengths.filter { $0.value > 0 } }
        guard keep.sendOn else { return [] }
        guard let log = logs[layers.upperBound] else {
            throw WireErrorMessage(code: .internal, message: "stage \(assign.stageIndex) has no log of what leaves layer \(layers.upperBound - 1) to send on")
        }
        return chunks(lengths).map { part in
            Activations(requestID: UInt64(assign.plan) << 32, lastRowsOnly: false, rebuild: true, type: .f32, dim: UInt32(dim),
                        entries: part.map { .init(sequence: $0, position: UInt32($1.lowerBound), tokenCount: UInt32($1.count)) },
                        payload: ActivationCodec.encode(part.flatMap { seq, positions in log[seq]![positions.lowerBound * dim ..< positions.upperBound * dim] }, as: .f32))
        }
    }

    /// The positions of `lengths`, in parts of at most the assignment's `batchRows`, by sequence.
    private func chunks(_ lengths: [SequenceID: Int]) -> [[(sequence: SequenceID, positions: Range<Int>)]] {
        batchParts(lengths.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, rows: Int(assign.batchRows))
    }

    /// Runs the layers this stage rebuilds over rows that enter them, at positions it holds,
    /// and logs what reaches the boundaries it logs among them.
    private func rebuildLayers(_ hidden: inout [Float], _ batch: [BatchToken]) throws(WireErrorMessage) {
        guard let rebuilt = assign.keep?.rebuild, !rebuilt.isEmpty else { return }
        let tapped: [Int: [Float]]
        do { tapped = try engine.forward(&hidden, batch: batch, cache: cache, layers: rebuilt, rebuilding: true, taps: logPoints) } catch {
            throw WireErrorMessage(code: .internal, message: "stage \(assign.stageIndex) could not rebuild layers \(rebuilt): \(error.description)")
        }
        for (p, rows) in tapped { log(rows, batch, at: p) }
        if logPoints.contains(rebuilt.upperBound) { log(hidden, batch, at: rebuilt.upperBound) }
    }

    /// A `rebuild` forward: its rows run through the layers this stage rebuilds, at positions
    /// it holds, and go no further. A sequence it fails for is dropped, so that its next batch
    /// fails rather than reading a cache that was not rebuilt.
    private func rebuild(_ m: Activations) throws(WireErrorMessage) {
        guard let keep = assign.keep, !keep.rebuild.isEmpty, !keep.rebuildFromLog else {
            throw WireErrorMessage(code: .malformed, requestID: m.requestID, message: "stage \(assign.stageIndex) has no layers to rebuild")
        }
        let dim = engine.config.dim
        do throws(WireErrorMessage) {
            var hidden: [Float]
            do { hidden = try ActivationCodec.decode(m.payload, as: m.type, count: m.rowCount * dim) } catch {
                throw WireErrorMessage(code: .malformed, requestID: m.requestID, message: error.description)
            }
            let batch = m.entries.flatMap { e in (0 ..< Int(e.tokenCount)).map { BatchToken(sequence: e.sequence, position: Int(e.position) + $0) } }
            do { try rebuildLayers(&hidden, batch) } catch {
                throw WireErrorMessage(code: error.code, requestID: m.requestID, message: error.message)
            }
            for e in m.entries {
                let left = (awaitingRebuild[e.sequence] ?? 0) - Int(e.tokenCount)
                awaitingRebuild[e.sequence] = left > 0 ? left : nil
            }
        } catch {
            for e in m.entries { release(e.sequence) }
            throw error
        }
    }

    /// Whether an assignment asks for exactly this stage's weights.
    func canKeepWeights(for a: Assign) -> Bool {
        a.model == assign.model && a.layerStart == assign.layerStart && a.layerEnd == assign.layerEnd
            && a.layerCount == assign.layerCount
    }

    /// Memory a stage keeps for itself beyond weights and KV cache: the process (runtime,
    /// sockets, messages) and the engine's scratch for a prompt chunk of 512 tokens.
    public static func headroomBytes(config: LlamaConfig) -> Int {
        (64 << 20) + 512 * (6 * config.dim + 2 * config.hiddenDim) * 4
    }

    /// The KV cache's budget in pages: what `memoryLimit` leaves after the weights and the
    /// headroom, up to what `maxSequences` sequences at full context could use. A limit that
    /// leaves less than one sequence at full context is refused, naming the figures.
    static func kvBudget(config: LlamaConfig, layers: Int, assign a: Assign, weightBytes: Int, memoryLimit: UInt64,
                         limitSource: String) throws(WireErrorMessage) -> (shape: KVPageShape, pages: Int) {
        let shape = KVPageShape(layers: layers, kvDim: config.kvDim)
        let perSequence = shape.pages(for: min(Int(a.contextLength), config.contextLength))
        let most = Int(a.maxSequences) * perSequence
        guard memoryLimit > 0 else { return (shape, most) }
        let headroom = headroomBytes(config: config)
        // A page's cost counts the log of what the stage sends on for its positions, if it keeps one.
        let logs = a.stageIndex + 1 < a.stageCount && a.activationType == .f32
        let pageBytes = shape.bytes + (logs ? shape.rows * config.dim * 4 : 0)
        let left = Int(clamping: memoryLimit) - weightBytes - headroom
        guard left >= perSequence * pageBytes else {
            throw WireErrorMessage(code: .outOfMemory, message:
                "layers \(a.layerStart)..<\(a.layerEnd) need \(weightBytes >> 20) MiB of weights, \(headroom >> 20) MiB of " +
                "working memory and \((perSequence * pageBytes) >> 20) MiB of KV cache (and log) for one sequence of \(a.contextLength) " +
                "tokens; the worker allows \(memoryLimit >> 20) MiB (\(limitSource))")
        }
        return (shape, min(most, left / pageBytes))
    }

    /// Runs the waiting messages through this stage's layers, as one batch where their
    /// sequences are distinct, up to the assignment's `batchRows` rows. Each message gets its
    /// own output (or error), in order.
    func run(_ messages: [Activations]) -> [Result<Activations, WireErrorMessage>] {
        var results: [Result<Activations, WireErrorMessage>] = []
        // Nothing is decoded of a message with more rows or wider ones than the plan sends.
        var fit: [Activations] = []
        for m in messages {
            do throws(WireErrorMessage) { try check(m); fit.append(m) } catch {
                if m.rebuild { for e in m.entries { release(e.sequence) } }
                results.append(.failure(error))
            }
        }
        // Rebuilds come before any batch of their plan, and answer only when they fail.
        for m in fit where m.rebuild {
            do throws(WireErrorMessage) { try rebuild(m) } catch { results.append(.failure(error)) }
        }
        var group: [Activations] = []
        var groupSequences = Set<UInt64>()
        var groupRows = 0
        func flush() {
            guard !group.isEmpty else { return }
            results += runGroup(group)
            group = []
            groupSequences = []
            groupRows = 0
        }
        for m in fit where !m.rebuild {
            let sequences = Set(m.entries.map(\.sequence))
            if !groupSequences.isDisjoint(with: sequences) || groupRows + m.rowCount > Int(assign.batchRows) { flush() }
            group.append(m)
            groupSequences.formUnion(sequences)
            groupRows += m.rowCount
        }
        flush()
        return results
    }

    /// Whether a forward is one this stage's plan sends: rows of the model's width, at most
    /// `batchRows` of them.
    private func check(_ m: Activations) throws(WireErrorMessage) {
        let dim = engine.config.dim
        guard Int(m.dim) == dim else {
            throw WireErrorMessage(code: .malformed, requestID: m.requestID, message: "activations have rows of \(m.dim) values; this model's are \(dim)")
        }
        guard m.rowCount <= Int(assign.batchRows) else {
            throw WireErrorMessage(code: .malformed, requestID: m.requestID,
                                   message: "a forward of \(m.rowCount) rows; plan \(assign.plan) sends at most \(assign.batchRows) at once")
        }
    }

    /// One forward pass over several messages; when it fails, each message alone, so that one
    /// bad sequence fails only its own message.
    private func runGroup(_ group: [Activations]) -> [Result<Activations, WireErrorMessage>] {
        do throws(WireErrorMessage) {
            return try forward(group).map { .success($0) }
        } catch {
            guard group.count > 1 else { return [.failure(error)] }
            return group.map { m in
                do throws(WireErrorMessage) { return .success(try forward([m])[0]) } catch { return .failure(error) }
            }
        }
    }

    private func forward(_ group: [Activations]) throws(WireErrorMessage) -> [Activations] {
        let dim = engine.config.dim
        var batch: [BatchToken] = []
        for m in group {
            for e in m.entries {
                if let left = awaitingRebuild[e.sequence] {
                    throw WireErrorMessage(code: .internal, requestID: m.requestID,
                                           message: "stage \(assign.stageIndex): the KV cache of sequence \(e.sequence) in layers \(assign.keep?.rebuild ?? layers) misses \(left) positions of its rebuild")
                }
                for t in 0 ..< Int(e.tokenCount) { batch.append(BatchToken(sequence: e.sequence, position: Int(e.position) + t)) }
            }
        }
        var hidden = [Float](repeating: 0, count: batch.count * dim)
        var row = 0
        for m in group {
            let rows = m.rowCount
            do throws(WireError) {
                let bytes = m.payload
                var values = try ActivationCodec.decode(bytes, as: m.type, count: rows * dim)
                _ = values.withUnsafeMutableBufferPointer { v in
                    hidden.withUnsafeMutableBufferPointer { h in
                        UnsafeMutableBufferPointer(rebasing: h[row * dim ..< (row + rows) * dim]).update(fromContentsOf: v)
                    }
                }
            } catch {
                throw WireErrorMessage(code: .malformed, requestID: m.requestID, message: error.description)
            }
            row += rows
        }

        let start = DispatchTime.now().uptimeNanoseconds
        let tapped: [Int: [Float]]
        do {
            tapped = try engine.forward(&hidden, batch: batch, cache: cache, layers: layers, taps: logPoints)
        } catch {
            let code: WireErrorMessage.Code = if case .cache(.contextOverflow) = error { .contextOverflow } else { .internal }
            throw WireErrorMessage(code: code, requestID: group[0].requestID,
                                   message: "stage \(assign.stageIndex) (layers \(layers)): \(error.description)")
        }
        let nanos = DispatchTime.now().uptimeNanoseconds - start
        for (p, rows) in tapped { log(rows, batch, at: p) }
        if logPoints.contains(layers.upperBound) { log(hidden, batch, at: layers.upperBound) }

        // Split the batch back into the messages it came from.
        var out: [Activations] = []
        row = 0
        hidden.withUnsafeBufferPointer { h in
            for m in group {
                var next = m
                next.stageNanos.append(nanos)
                if isLast && m.lastRowsOnly {
                    var rows: [Float] = []
                    rows.reserveCapacity(m.entries.count * dim)
                    var r = row
                    for e in m.entries {
                        r += Int(e.tokenCount)
                        rows += h[(r - 1) * dim ..< r * dim]
                    }
                    next.payload = ActivationCodec.encode(rows, as: m.type)
                } else {
                    next.payload = ActivationCodec.encode(UnsafeBufferPointer(rebasing: h[row * dim ..< (row + m.rowCount) * dim]), as: m.type)
                }
                row += m.rowCount
                out.append(next)
            }
        }
        return out
    }

    /// Appends a batch's rows that reached boundary `point` to its log; a batch that rewinds a
    /// sequence rewinds its log too.
    private func log(_ hidden: [Float], _ batch: [BatchToken], at point: Int) {
        let dim = engine.config.dim
        var log = logs.removeValue(forKey: point) ?? [:]
        var row = 0
        while row < batch.count {
            let seq = batch[row].sequence, first = batch[row].position
            var end = row + 1
            while end < batch.count && batch[end].sequence == seq { end += 1 }
            var rows = log.removeValue(forKey: seq) ?? []
            if rows.count > first * dim { rows.removeSubrange(first * dim ..< rows.count) }
            // (A gap cannot happen: the KV cache refused the batch first.)
            if rows.count == first * dim { rows += hidden[row * dim ..< end * dim] }
            log[seq] = rows
            row = end
        }
        logs[point] = log
    }
}
