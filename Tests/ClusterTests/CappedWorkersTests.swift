import Foundation
import StrataCoordinator
import StrataModel
import TestSupport
import Testing

/// The promise the project exists for, under enforced caps: a model about twice as large as
/// each worker's memory cgroup runs through three workers that have no copy of it (the
/// coordinator streams their layers), and answers as one uncapped process does; and a worker
/// whose disk writes slowly takes its streamed layers however long they take to write.
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

    /// A stage file streamed to a worker whose disk writes 1 MiB/s: each 4 MiB chunk takes 4 s
    /// to write, twice the coordinator's heartbeat timeout. The worker answers heartbeats all
    /// the while and is never taken for lost, neither at start nor when it takes every layer
    /// after the other worker goes; and the fast worker, loaded long before, is not lost either.
    @Test func aWorkerWhoseDiskWritesSlowlyKeepsItsPlace() async throws {
        let dir = try temporaryDirectory("slow")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try fourLayerModel(in: dir)
        let rate = 1 << 20
        let disk = try ThrottledDisk(name: "strata-test-\(ProcessInfo.processInfo.processIdentifier)-disk", writeBytesPerSecond: rate)
        defer { disk.remove() }
        let slow = try WorkerProcess(cgroup: disk, ["--cache-dir", disk.mountPoint + "/cache"])
        let fast = try WorkerProcess(["--cache-dir", dir + "/cache"])
        defer {
            for w in [slow, fast] where w.child.wait(timeout: .seconds(20)) == nil { w.kill() }
        }
        let started = ContinuousClock.now
        let cluster = try await makeCluster(model: model, endpoints: [slow.endpoint, fast.endpoint]) {
            $0.contextLength = 256
            $0.loadTimeout = .seconds(300)
        }
        defer { cluster.shutdown(stopWorkers: true) }
        let took = ContinuousClock.now - started
        #expect(cluster.stages.map(\.streamedWeights) == [true, true])
        // The throttle held: the slow worker's stage file took its time to write.
        let stageBytes = try #require(try FileManager.default.contentsOfDirectory(atPath: disk.mountPoint + "/cache")
            .first { $0.hasSuffix(".gguf") }
            .flatMap { try FileManager.default.attributesOfItem(atPath: disk.mountPoint + "/cache/" + $0)[.size] as? Int })
        #expect(stageBytes > 4 << 20)
        #expect(took > .milliseconds(stageBytes * 800 / rate), "started in \(took)")
        let prompt: [Int32] = [1, 2, 3, 4]
        let expected = try singleProcessGreedy(model: model, prompt: prompt, steps: 12)
        #expect(try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 12)).generatedIDs == expected)
        #expect(cluster.recoveries == 0, "a worker was taken for lost at start")

        // The slow worker takes every layer: a stage file of about 8.8 MB, to its slow disk.
        fast.kill()
        let whole = await ChildProcess.poll(timeout: .seconds(120)) {
            if case .serving = cluster.health { return cluster.stages.count == 1 } else { return false }
        }
        #expect(whole, "\(cluster.health)")
        #expect(cluster.stages.map(\.layers) == [0 ..< 4])
        #expect(cluster.recoveries == 1, "the slow worker was taken for lost while it wrote")
        #expect(try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 12)).generatedIDs == expected)
    }

    /// A worker that hangs while the cluster starts (stopped while its stage file is written to
    /// its slow disk) fails the start within the heartbeat timeout, and the error names it;
    /// the start does not wait out the load timeout.
    @Test func aWorkerThatHangsWhileTheClusterStartsFailsTheStart() async throws {
        let dir = try temporaryDirectory("hang")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try fourLayerModel(in: dir)
        let disk = try ThrottledDisk(name: "strata-test-\(ProcessInfo.processInfo.processIdentifier)-hang", writeBytesPerSecond: 1 << 20)
        defer { disk.remove() }
        let slow = try WorkerProcess(cgroup: disk, ["--cache-dir", disk.mountPoint + "/cache"])
        let fast = try WorkerProcess(["--cache-dir", dir + "/cache"])
        defer { [slow, fast].forEach { $0.kill() } }
        let start = Task {
            try await makeCluster(model: model, endpoints: [slow.endpoint, fast.endpoint]) {
                $0.contextLength = 256
                $0.loadTimeout = .seconds(120)
            }
        }
        let receiving = await ChildProcess.poll(timeout: .seconds(60)) { slow.child.stderr.contains("receiving") }
        try #require(receiving, "\(slow.child.stderr)")
        kill(slow.child.process.processIdentifier, SIGSTOP)
        let stopped = ContinuousClock.now
        do {
            let cluster = try await start.value
            cluster.shutdown()
            Issue.record("the cluster started")
        } catch let error as ClusterError {
            guard case let .workerLost(endpoint, _, _, reason) = error else { Issue.record("\(error)"); return }
            #expect(endpoint == slow.endpoint)
            #expect(reason.contains("while loading"), "\(reason)")
        }
        let took = ContinuousClock.now - stopped
        #expect(took < .seconds(10), "the start failed \(took) after the worker stopped")
    }

    private func temporaryDirectory(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// 4 layers of width 512 (FFN 2048), Q4_0: a stage file of 2 layers is about 4.4 MB.
    private func fourLayerModel(in dir: String) throws -> String {
        let model = dir + "/four.gguf"
        let synth = try ChildProcess.strata(["synth", "--layers", "4", "--dim", "512", "--heads", "8", "--kv-heads", "4",
                                             "--ffn", "2048", "--vocab", "4096", "--context", "256", "--type", "q4_0",
                                             "--seed", "5", "--out", model])
        #expect(synth.wait(timeout: .seconds(120)) == 0, "\(synth.stderr)")
        return model
    }
}
