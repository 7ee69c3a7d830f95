import Foundation
import StrataCoordinator
import StrataModel
import TestSupport
import Testing

/// Workers that have no copy of the model, and workers on other hosts.
@Suite(.serialized)
struct ClusterHostsTests {
    static let tiny = TinyModel(dim: 64, hiddenDim: 128, nLayers: 5, nHeads: 4, nKVHeads: 1, vocab: 80, contextLength: 128, seed: 23)

    /// A worker without the model gets its layers streamed, caches them, and loads them from
    /// its cache on the next start; the output is the single process's either way.
    @Test func streamedLayersAreCachedAndCorrect() async throws {
        let path = try Self.tiny.write()
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("strata-cache-\(UUID().uuidString)").path
        defer { for p in [path, cache] { try? FileManager.default.removeItem(atPath: p) } }
        let prompt: [Int32] = [5, 6, 7, 8]
        let expected = try singleProcessGreedy(model: path, prompt: prompt, steps: 30)
        for round in 0 ..< 2 {
            let workers = try startWorkers(1, model: path) + [try WorkerProcess(["--cache-dir", cache])]
            defer { workers.forEach { $0.kill() } }
            let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = stages([2, 3]) }
            #expect(cluster.stages.map(\.streamedWeights) == [false, round == 0], "round \(round)")
            #expect(try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 30)).generatedIDs == expected)
            cluster.shutdown(stopWorkers: true)
            for w in workers { w.child.wait(timeout: .seconds(10)) }
            let files = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".gguf") }
            #expect(files.count == 1 && files[0].hasSuffix("-2-5.gguf"), "\(files)")
            // The stage's tensor digests are cached beside it: the next start reads nothing to check them.
            #expect(try FileManager.default.contentsOfDirectory(atPath: cache + "/digests").count == 1)
        }
    }

    /// A worker with a copy of the model checks only its own layers of it against the
    /// coordinator's digests: a copy that differs in another stage's layer serves, one that
    /// differs in its own is refused with an error naming the tensor.
    @Test func aWorkerChecksOnlyItsOwnLayersOfItsCopy() async throws {
        let path = try Self.tiny.write()
        let copy = path + ".copy"
        defer { for p in [path, copy] { try? FileManager.default.removeItem(atPath: p) } }
        let file = try GGUFFile(path: path)
        /// The copy: the model with one byte of `tensor` changed.
        func corruptCopy(_ tensor: String) throws {
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            bytes[file.dataOffset + file.tensorInfo(tensor)!.offset + 5] ^= 0x40
            try? FileManager.default.removeItem(atPath: copy)
            try Data(bytes).write(to: URL(fileURLWithPath: copy))
        }
        let prompt: [Int32] = [3, 1, 4]
        let expected = try singleProcessGreedy(model: path, prompt: prompt, steps: 12)

        try corruptCopy("blk.0.ffn_up.weight")  // layer 0 is the first worker's, from the original
        do {
            let workers = [try WorkerProcess(["--model", path]), try WorkerProcess(["--model", copy])]
            defer { workers.forEach { $0.kill() } }
            let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = stages([2, 3]) }
            defer { cluster.shutdown(stopWorkers: true) }
            #expect(try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 12)).generatedIDs == expected)
        }

        try corruptCopy("blk.3.ffn_up.weight")  // layer 3 is the second worker's
        let workers = [try WorkerProcess(["--model", path]), try WorkerProcess(["--model", copy])]
        defer { workers.forEach { $0.kill() } }
        await #expect {
            _ = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = stages([2, 3]) }
        } throws: { error in
            "\(error)".contains("blk.3.ffn_up.weight") && "\(error)".contains(workers[1].endpoint)
        }
    }

    /// Three hosts: each worker in its own network namespace behind a bridge, at its own
    /// address; the coordinator reaches them over veth, and stages pass activations to each
    /// other directly across the bridge.
    @Test func workersOnSeparateHosts() async throws {
        let net = try TestNetwork(hosts: 3)
        defer { net.tearDown() }
        let path = try Self.tiny.write()
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("strata-cache-\(UUID().uuidString)").path
        defer { for p in [path, cache] { try? FileManager.default.removeItem(atPath: p) } }
        // The last host has no copy of the model: its layers cross the network too.
        let workers = try (0 ..< 3).map { i in
            try WorkerProcess(listen: "tcp://\(net.address(i)):7000", netns: net.namespace(i),
                              i < 2 ? ["--model", path] : ["--cache-dir", cache])
        }
        defer { workers.forEach { $0.kill() } }
        #expect(workers.map(\.endpoint) == (0 ..< 3).map { "tcp://\(net.address($0)):7000" })
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = .even }
        defer { cluster.shutdown(stopWorkers: true) }
        for prompt: [Int32] in [[1, 2, 3], [44, 45]] {
            let expected = try singleProcessGreedy(model: path, prompt: prompt, steps: 24)
            #expect(try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 24)).generatedIDs == expected)
        }
        #expect(cluster.stages.map(\.streamedWeights) == [false, false, true])
    }

    /// The multi-host setup as the README gives it, command for command: key pairs made with
    /// `strata keygen`, each worker on its own host (a network namespace) with its secret key
    /// and the coordinator's public key, and `strata coordinator` given every worker's endpoint
    /// with its public key. It answers as one process does.
    @Test func theDocumentedSetupWithKeys() throws {
        let net = try TestNetwork(hosts: 3)
        defer { net.tearDown() }
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("strata-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: keys) }
        for name in ["coordinator", "worker-1", "worker-2", "worker-3"] {
            let keygen = try ChildProcess.strata(["keygen", "\(keys)/\(name)"])
            #expect(keygen.wait(timeout: .seconds(10)) == 0, "\(keygen.stderr)")
        }
        let model = TestPaths.defaultModel
        let workers = try (0 ..< 3).map { i in
            try WorkerProcess(listen: "tcp://0.0.0.0:7000", netns: net.namespace(i),
                              ["--model", model, "--key", "\(keys)/worker-\(i + 1).key", "--coordinator-key", "\(keys)/coordinator.pub"])
        }
        defer { workers.forEach { $0.kill() } }
        let prompt = ["--chat", "--prompt", "What is the capital of France?"]
        let coordinator = try ChildProcess.strata(["coordinator", "--model", model, "--key", "\(keys)/coordinator.key", "--threads", "1",
                                                   "--workers", (0 ..< 3).map { "tcp://\(net.address($0)):7000=\(keys)/worker-\($0 + 1).pub" }.joined(separator: ","),
                                                   "--stop-workers"] + prompt)
        #expect(coordinator.wait(timeout: .seconds(120)) == 0, "\(coordinator.stderr)")
        let oneProcess = try ChildProcess.strata(["generate", "--model", model, "--threads", "1"] + prompt)
        #expect(oneProcess.wait(timeout: .seconds(60)) == 0, "\(oneProcess.stderr)")
        #expect(!coordinator.stdout.isEmpty && coordinator.stdout == oneProcess.stdout, "\(coordinator.stdout) vs \(oneProcess.stdout)")
        #expect(coordinator.stderr.contains("links are encrypted"), "\(coordinator.stderr)")
        for w in workers { #expect(w.child.wait(timeout: .seconds(15)) == 0, "\(w.child.stderr)") }
    }
}

/// Hosts simulated with network namespaces: `strata-<pid>-<i>` at 10.213.<n>.(10+i)/24, each
/// joined by a veth pair to one bridge that holds 10.213.<n>.1 for this (root) namespace.
final class TestNetwork {
    let prefix: String
    let subnet: String
    let hosts: Int
    private var made: [String] = []

    init(hosts: Int) throws {
        let pid = ProcessInfo.processInfo.processIdentifier
        prefix = "st\(pid % 100_000)"
        subnet = "10.213.\(pid % 250)"
        self.hosts = hosts
        do {
            try ip("link", "add", "\(prefix)-br", "type", "bridge")
            made.append("link:\(prefix)-br")
            try ip("addr", "add", "\(subnet).1/24", "dev", "\(prefix)-br")
            try ip("link", "set", "\(prefix)-br", "up")
            for i in 0 ..< hosts {
                let ns = namespace(i), host = "\(prefix)-h\(i)", peer = "\(prefix)-p\(i)"
                try ip("netns", "add", ns)
                made.append("netns:\(ns)")
                try ip("link", "add", host, "type", "veth", "peer", "name", peer)
                made.append("link:\(host)")
                try ip("link", "set", host, "master", "\(prefix)-br")
                try ip("link", "set", host, "up")
                try ip("link", "set", peer, "netns", ns)
                try ip("-n", ns, "addr", "add", "\(address(i))/24", "dev", peer)
                try ip("-n", ns, "link", "set", peer, "up")
                try ip("-n", ns, "link", "set", "lo", "up")
            }
        } catch {
            tearDown()
            throw error
        }
    }

    func namespace(_ i: Int) -> String { "\(prefix)-ns\(i)" }
    func address(_ i: Int) -> String { "\(subnet).\(10 + i)" }

    func tearDown() {
        for item in made.reversed() {
            let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
            if parts[0] == "netns" { try? ip("netns", "del", parts[1]) } else { try? ip("link", "del", parts[1]) }
        }
        made = []
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    private func ip(_ args: String...) throws {
        let p = try ChildProcess(URL(fileURLWithPath: "/usr/sbin/ip"), args)
        guard p.wait(timeout: .seconds(10)) == 0 else {
            throw Failure(description: "ip \(args.joined(separator: " ")): \(p.stderr)")
        }
    }
}
