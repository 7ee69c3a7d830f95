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

    @Test func sequencesWaitForPagesAndAllFinish() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        // Two stages of two layers; each worker's memory holds its weights, the headroom and
        // pages for two sequences at full context (64 positions: 4 pages of 16). The first
        // stage's pages cost the log of the rows it sends on (f32) too.
        let shape = KVPageShape(layers: 2, kvDim: config.kvDim)
        let workers = try (0 ..< 2).map { i in
            let weights = try StageFile.tensorNames(in: file, layers: 2 * i ..< 2 * i + 2).reduce(0) { $0 + file.tensorInfo($1)!.byteCount }
            let log = i == 0 ? shape.rows * config.dim * 4 : 0
            let memory = Stage.headroomBytes(config: config) + weights + 8 * (shape.bytes + log)
            return try WorkerProcess(["--model", path, "--max-memory", "\(memory)"])
        }
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) {
            $0.partition = stages([2, 2])
            $0.contextLength = 64
            $0.maxSequences = 16
        }
        defer { cluster.shutdown(stopWorkers: true) }
        #expect(cluster.stages.map(\.kvPages) == [8, 8] && cluster.stages.map(\.kvPageRows) == [16, 16])

        // Five requests that may each fill the whole context, handed over at once: two run,
        // the others wait for their pages, and no more than two ever run at once.
        let prompts: [[Int32]] = (0 ..< 5).map { [Int32($0 + 1), 7, 9, 11] }
        // (Past the end-of-generation token too: every request fills all 64 positions.)
        let expected = try prompts.map { try singleProcessGreedy(model: path, prompt: $0, steps: 60, stopAtEnd: false) }
        let options = GenerationOptions(maxTokens: 60, stopAtEndOfGeneration: false)
        let streams = try prompts.map { try cluster.submit(promptIDs: $0, options: options) }
        #expect(cluster.load.running == 2 && cluster.load.waiting == 3)
        let results = Task {
            try await withThrowingTaskGroup(of: (Int, [Int32]).self) { group in
                for (i, stream) in streams.enumerated() {
                    group.addTask {
                        for try await case let .finished(r) in stream { return (i, r.generatedIDs) }
                        return (i, [])
                    }
                }
                var out = [[Int32]](repeating: [], count: streams.count)
                for try await (i, ids) in group { out[i] = ids }
                return out
            }
        }
        var most = 0
        while cluster.load.running + cluster.load.waiting > 0 {
            most = max(most, cluster.load.running)
            try await Task.sleep(for: .milliseconds(1))
        }
        let got = try await results.value
        for i in prompts.indices { #expect(got[i] == expected[i] && got[i].count == 60, "request \(i)") }
        #expect(most == 2, "\(cluster.stages.map(\.kvPages))")
    }
}
