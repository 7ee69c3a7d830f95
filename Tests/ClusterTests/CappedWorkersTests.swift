import Foundation
import StrataCoordinator
import StrataModel
import TestSupport
import Testing

/// The promise the project exists for, under enforced caps: a model about twice as large as
/// each worker's memory cgroup runs through three workers that have no copy of it (the
/// coordinator streams their layers), and answers as one uncapped process does.
@Suite(.serialized)
struct CappedWorkersTests {
    @Test func aModelLargerThanEachWorkersCapRunsThroughTheCluster() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-capped-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 36 layers of width 1536 (FFN 4096, 12 query and 4 KV heads), Q4_0: 565 MB.
        let model = dir + "/capped.gguf"
        let synth = try ChildProcess.strata(["synth", "--layers", "36", "--dim", "1536", "--heads", "12", "--kv-heads", "4",
                                             "--ffn", "4096", "--vocab", "32000", "--context", "512", "--type", "q4_0",
                                             "--seed", "3", "--out", model])
        #expect(synth.wait(timeout: .seconds(300)) == 0, "\(synth.stderr)")
        let cap = 300 << 20
        let modelBytes = try #require(try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int)
        #expect(modelBytes > cap * 18 / 10)

        let pid = ProcessInfo.processInfo.processIdentifier
        let groups = try (0 ..< 3).map { try MemoryCgroup(name: "strata-test-\(pid)-\($0)", limitBytes: cap) }
        defer { groups.forEach { $0.remove() } }
        let workers = try groups.enumerated().map { i, group in try WorkerProcess(cgroup: group, ["--cache-dir", dir + "/cache\(i)"]) }
        do {
            defer {
                for w in workers where w.child.wait(timeout: .seconds(20)) == nil { w.kill() }
            }
            let cluster = try await makeCluster(model: model, endpoints: workers.map(\.endpoint)) {
                $0.contextLength = 256
                $0.loadTimeout = .seconds(600)
            }
            defer { cluster.shutdown(stopWorkers: true) }
            // Each worker knows its cap from its cgroup (no --max-memory) and got its layers streamed.
            #expect(cluster.stages.map(\.memoryBytes) == [UInt64](repeating: UInt64(cap), count: 3))
            #expect(cluster.stages.map(\.streamedWeights) == [true, true, true])
            #expect(cluster.stages.map(\.layers.count).reduce(0, +) == 36)
            for prompt: [Int32] in [[1, 2, 3, 4], [900, 31, 7]] {
                let expected = try singleProcessGreedy(model: model, prompt: prompt, steps: 12)
                let got = try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 12)).generatedIDs
                #expect(got == expected)
            }
        }
        for (i, g) in groups.enumerated() {
            #expect(g.oomKills == 0, "worker \(i)")
            print("capped worker \(i): peak \((g.peakBytes ?? 0) >> 20) MiB of \(cap >> 20) MiB")
        }
    }
}
