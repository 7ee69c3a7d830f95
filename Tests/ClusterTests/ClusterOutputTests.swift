import Foundation
import StrataCoordinator
import StrataModel
import StrataWire
import TestSupport
import Testing

/// The cluster computes what one process computes: real worker processes over real TCP.
@Suite(.serialized)
struct ClusterOutputTests {
    static let tiny = TinyModel(dim: 64, hiddenDim: 128, nLayers: 6, nHeads: 8, nKVHeads: 2, vocab: 96, contextLength: 256, seed: 11)
    static let prompts: [[Int32]] = [[1, 2, 3, 4, 5], [17], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51], [90, 3, 77]]

    /// With f32 activations the cluster's greedy tokens equal the single process's for every
    /// split: whole, halves, uneven, one layer per worker.
    @Test(arguments: [[6], [3, 3], [1, 4, 1], [2, 2, 2], [1, 1, 1, 1, 1, 1], [5, 1]])
    func tinyModelGreedyEqualsOneProcess(split: [Int]) async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(split.count, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = stages(split) }
        #expect(cluster.stages.map(\.layers) == { if case let .explicit(r) = stages(split) { r } else { [] } }())
        for prompt in Self.prompts {
            let expected = try singleProcessGreedy(model: path, prompt: prompt, steps: 40)
            let got = try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 40))
            #expect(got.generatedIDs == expected, "split \(split), prompt \(prompt)")
        }
        cluster.shutdown(stopWorkers: true)
        for w in workers { #expect(w.child.wait(timeout: .seconds(10)) == 0, "a worker did not exit on shutdown") }
    }

    /// Prompts sent at once, sharing the pipeline, give what each gives alone.
    @Test func concurrentPromptsEqualAlone() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(3, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let prompts = (0 ..< 8).map { i in (0 ..< (3 + i)).map { Int32(($0 * 7 + i * 13) % 96) } }
        var alone: [[Int32]] = []
        for p in prompts { alone.append(try await cluster.generate(promptIDs: p, options: GenerationOptions(maxTokens: 24)).generatedIDs) }
        let together = await cluster.generateAll(prompts, options: GenerationOptions(maxTokens: 24))
        #expect(together.map { try? $0.get().generatedIDs } == alone.map { Optional($0) })
    }

    /// The default model through 3 workers gives llama.cpp's greedy tokens on the public
    /// reference prompts, with each activation type on the wire.
    @Test(arguments: [ActivationType.f32, .f16, .bf16])
    func defaultModelMatchesReference(activations: ActivationType) async throws {
        let refs = try GreedyReference.load()
        let workers = try startWorkers(3, model: TestPaths.defaultModel)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: TestPaths.defaultModel, endpoints: workers.map(\.endpoint)) { $0.activationType = activations }
        defer { cluster.shutdown(stopWorkers: true) }
        let layers = cluster.stages.map(\.layers)
        #expect(layers.count == 3 && layers.first?.lowerBound == 0 && layers.last?.upperBound == 30)
        for p in refs.prompts {
            let got = try await cluster.generate(promptIDs: p.prompt_ids, options: GenerationOptions(maxTokens: p.generated_ids.count))
            #expect(got.generatedIDs == p.generated_ids, "\(p.name) with \(activations) activations")
        }
    }

    /// All five reference prompts at once through 3 workers: the same tokens as alone.
    @Test func defaultModelConcurrentPrompts() async throws {
        let refs = try GreedyReference.load()
        let workers = try startWorkers(3, model: TestPaths.defaultModel)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: TestPaths.defaultModel, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let prompts = refs.prompts + refs.prompts.prefix(3)
        let longest = prompts.map(\.generated_ids.count).max()!
        let together = await cluster.generateAll(prompts.map(\.prompt_ids), options: GenerationOptions(maxTokens: longest))
        for (p, r) in zip(prompts, together) {
            let ids = try r.get().generatedIDs
            #expect(Array(ids.prefix(p.generated_ids.count)) == p.generated_ids, "\(p.name)")
        }
    }
}
