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
    func tinyModelGreedyEqualsOneProcess(split: [Int]) throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(split.count, model: path)
        // Swift may release a value after its last use: keep the processes until the end.
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = stages(split) }
        #expect(cluster.stages.map(\.layers) == { if case let .explicit(r) = stages(split) { r } else { [] } }())
        for prompt in Self.prompts {
            let expected = try singleProcessGreedy(model: path, prompt: prompt, steps: 40)
            let got = try cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 40))
            #expect(got.generatedIDs == expected, "split \(split), prompt \(prompt)")
        }
        cluster.shutdown(stopWorkers: true)
        for w in workers { #expect(w.child.wait(timeout: .seconds(10)) == 0, "a worker did not exit on shutdown") }
    }

    /// Prompts sent at once, sharing the pipeline, give what each gives alone.
    @Test func concurrentPromptsEqualAlone() throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(3, model: path)
        // Swift may release a value after its last use: keep the processes until the end.
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let prompts = (0 ..< 8).map { i in (0 ..< (3 + i)).map { Int32(($0 * 7 + i * 13) % 96) } }
        let alone = try prompts.map { try cluster.generate(promptIDs: $0, options: GenerationOptions(maxTokens: 24)).generatedIDs }
        let together = Results(count: prompts.count)
        onSeparateThreads(prompts.count) { i in
            together.set(i, try? cluster.generate(promptIDs: prompts[i], options: GenerationOptions(maxTokens: 24)).generatedIDs)
        }
        #expect(together.values == alone.map { Optional($0) })
    }

    /// The default model through 3 workers gives llama.cpp's greedy tokens on the public
    /// reference prompts, with each activation type on the wire.
    @Test(arguments: [ActivationType.f32, .f16, .bf16])
    func defaultModelMatchesReference(activations: ActivationType) throws {
        let refs = try GreedyReference.load()
        let workers = try startWorkers(3, model: TestPaths.defaultModel)
        // Swift may release a value after its last use: keep the processes until the end.
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: TestPaths.defaultModel, endpoints: workers.map(\.endpoint)) { $0.activationType = activations }
        defer { cluster.shutdown(stopWorkers: true) }
        let layers = cluster.stages.map(\.layers)
        #expect(layers.count == 3 && layers.first?.lowerBound == 0 && layers.last?.upperBound == 30)
        for p in refs.prompts {
            let got = try cluster.generate(promptIDs: p.prompt_ids, options: GenerationOptions(maxTokens: p.generated_ids.count))
            #expect(got.generatedIDs == p.generated_ids, "\(p.name) with \(activations) activations")
        }
    }

    /// All five reference prompts at once through 3 workers: the same tokens as alone.
    @Test func defaultModelConcurrentPrompts() throws {
        let refs = try GreedyReference.load()
        let workers = try startWorkers(3, model: TestPaths.defaultModel)
        // Swift may release a value after its last use: keep the processes until the end.
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: TestPaths.defaultModel, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let prompts = refs.prompts + refs.prompts.prefix(3)
        let together = Results(count: prompts.count)
        onSeparateThreads(prompts.count) { i in
            together.set(i, try? cluster.generate(promptIDs: prompts[i].prompt_ids,
                                                  options: GenerationOptions(maxTokens: prompts[i].generated_ids.count)).generatedIDs)
        }
        #expect(together.values == prompts.map { Optional($0.generated_ids) })
    }
}

/// Answers filled in from several threads.
final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [[Int32]?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: [Int32]?) { lock.withLock { slots[i] = v } }
    var values: [[Int32]?] { lock.withLock { slots } }
}
