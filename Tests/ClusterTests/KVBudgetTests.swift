import Foundation
import StrataCoordinator
import StrataModel
import StrataWorker
import Synchronization
import TestSupport
import Testing

/// Workers give their KV cache what their memory leaves after the weights, in pages; the
/// coordinator admits sequences by the pages they may fill on every stage, and the rest wait in
/// line rather than fail.
@Suite(.serialized)
struct KVBudgetTests {
    static let tiny = TinyModel(dim: 64, hiddenDim: 128, nLayers: 4, nHeads: 4, nKVHeads: 1, vocab: 80, contextLength: 64, seed: 31)

    @Test func sequencesWaitForPagesAndAllFinish() throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        // Two stages of two layers; each worker's memory holds its weights, the headroom and
        // pages for two sequences at full context (64 positions: 4 pages of 16).
        let shape = KVPageShape(layers: 2, kvDim: config.kvDim)
        let workers = try (0 ..< 2).map { i in
            let weights = try StageFile.tensorNames(in: file, layers: 2 * i ..< 2 * i + 2).reduce(0) { $0 + file.tensorInfo($1)!.byteCount }
            let memory = Stage.headroomBytes(config: config) + weights + 8 * shape.bytes
            return try WorkerProcess(["--model", path, "--max-memory", "\(memory)"])
        }
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: path, endpoints: workers.map(\.endpoint)) {
            $0.partition = stages([2, 2])
            $0.contextLength = 64
            $0.maxSequences = 16
        }
        defer { cluster.shutdown(stopWorkers: true) }
        #expect(cluster.stages.map(\.kvPages) == [8, 8] && cluster.stages.map(\.kvPageRows) == [16, 16])

        // Five requests that may each fill the whole context, handed over at once: two run at
        // once, the others wait for their pages. Events come in order on the scheduler's thread,
        // so counting requests between their first token and their end is exact.
        let prompts: [[Int32]] = (0 ..< 5).map { [Int32($0 + 1), 7, 9, 11] }
        // (Past the end-of-generation token too: every request fills all 64 positions.)
        let expected = try prompts.map { try singleProcessGreedy(model: path, prompt: $0, steps: 60, stopAtEnd: false) }
        struct Tally { var live = 0, most = 0, started: Set<Int> = [], results: [Int: Result<GenerationResult, ClusterError>] = [:] }
        let tally = Mutex(Tally())
        let finished = DispatchGroup()
        for i in prompts.indices {
            finished.enter()
            _ = try cluster.submit(promptIDs: prompts[i], options: GenerationOptions(maxTokens: 60, stopAtEndOfGeneration: false)) { event in
                tally.withLock { t in
                    switch event {
                    case .token:
                        if t.started.insert(i).inserted {
                            t.live += 1
                            t.most = max(t.most, t.live)
                        }
                    case let .finished(result):
                        if t.started.contains(i) { t.live -= 1 }
                        t.results[i] = result
                    }
                }
                if case .finished = event { finished.leave() }
            }
        }
        finished.wait()
        let t = tally.withLock { $0 }
        for i in prompts.indices {
            let ids = try? t.results[i]?.get().generatedIDs
            #expect(ids == expected[i] && ids?.count == 60, "request \(i)")
        }
        #expect(t.most == 2, "\(cluster.stages.map(\.kvPages))")
    }
}
