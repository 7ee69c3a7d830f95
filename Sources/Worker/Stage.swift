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
        let left = Int(clamping: memoryLimit) - weightBytes - headroom
        guard left >= perSequence * shape.bytes else {
            throw WireErrorMessage(code: .outOfMemory, message:
                "layers \(a.layerStart)..<\(a.layerEnd) need \(weightBytes >> 20) MiB of weights, \(headroom >> 20) MiB of " +
                "working memory and \((perSequence * shape.bytes) >> 20) MiB of KV cache for one sequence of \(a.contextLength) " +
                "tokens; the worker allows \(memoryLimit >> 20) MiB (\(limitSource))")
        }
        return (shape, min(most, left / shape.bytes))
    }

    /// Runs the waiting messages through this stage's layers, as one batch where their
    /// sequences are distinct. Each message gets its own output (or error), in order.
    func run(_ messages: [Activations]) -> [Result<Activations, WireErrorMessage>] {
        var results: [Result<Activations, WireErrorMessage>] = []
        var group: [Activations] = []
        var groupSequences = Set<UInt64>()
        func flush() {
            guard !group.isEmpty else { return }
            results += runGroup(group)
            group = []
            groupSequences = []
        }
        for m in messages {
            let sequences = Set(m.entries.map(\.sequence))
            if !groupSequences.isDisjoint(with: sequences) { flush() }
            group.append(m)
            groupSequences.formUnion(sequences)
        }
        flush()
        return results
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
            guard Int(m.dim) == dim else {
                throw WireErrorMessage(code: .malformed, requestID: m.requestID,
                                       message: "activations have rows of \(m.dim) values; this model's are \(dim)")
            }
            for e in m.entries {
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
        do {
            try engine.forward(&hidden, batch: batch, cache: cache, layers: layers)
        } catch {
            let code: WireErrorMessage.Code = if case .cache(.contextOverflow) = error { .contextOverflow } else { .internal }
            throw WireErrorMessage(code: code, requestID: group[0].requestID,
                                   message: "stage \(assign.stageIndex) (layers \(layers)): \(error.description)")
        }
        let nanos = DispatchTime.now().uptimeNanoseconds - start

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
}
