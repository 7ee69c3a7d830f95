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

        // Five requests that may each fill the whole context: two run at once, the others wait.
        let prompts: [[Int32]] = (0 ..< 5).map { [Int32($0 + 1), 7, 9, 11] }
        let expected = try prompts.map { try singleProcessGreedy(model: path, prompt: $0, steps: 60) }
        let results = Mutex<[Int: [Int32]]>([:])
        let most = Synchronization.Atomic<Int>(0)
        let done = Synchronization.Atomic<Bool>(false)
        let watcher = Thread {
            while !done.load(ordering: .relaxed) {
                let running = cluster.load.running
                if running > most.load(ordering: .relaxed) { most.store(running, ordering: .relaxed) }
                usleep(200)
            }
        }
        watcher.start()
        // One thread per request, all submitting at once.
        let finished = DispatchGroup()
        for i in prompts.indices {
            finished.enter()
            Thread {
                let ids = try? cluster.generate(promptIDs: prompts[i], options: GenerationOptions(maxTokens: 60)).generatedIDs
                results.withLock { $0[i] = ids }
                finished.leave()
            }.start()
        }
        finished.wait()
        done.store(true, ordering: .relaxed)
        let got = results.withLock { $0 }
        for i in prompts.indices { #expect(got[i] == expected[i], "request \(i)") }
        #expect(most.load(ordering: .relaxed) == 2, "\(cluster.stages.map(\.kvPages))")
    }
}
