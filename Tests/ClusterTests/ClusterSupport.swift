import Foundation
import StrataCoordinator
import StrataModel
import TestSupport
import ZeroMQ

/// Worker processes on loopback, one per stage.
func startWorkers(_ count: Int, model: String?, _ extra: [String] = []) throws -> [WorkerProcess] {
    try (0 ..< count).map { i in
        try WorkerProcess((model.map { ["--model", $0] } ?? []) + ["--name", "worker-\(i)"] + extra)
    }
}

/// A coordinator in this process over `workers`, with timeouts short enough for tests; its
/// links are encrypted, with the keys of the workers tests started (`TestKeys`).
func makeCluster(model: String, endpoints: [String], _ configure: (inout ClusterSettings) -> Void = { _ in }) async throws -> Cluster {
    var s = ClusterSettings(model: model, workers: endpoints, security: .curve(TestKeys.coordinator))
    s.workerKeys = TestKeys.workerKeys
    s.threads = 1
    s.connectTimeout = .seconds(20)
    s.workerTimeout = .seconds(3)
    s.heartbeatInterval = .milliseconds(200)
    configure(&s)
    return try await Cluster.start(settings: s)
}

/// Greedy ids from one process holding the whole model.
func singleProcessGreedy(model: String, prompt: [Int32], steps: Int, precision: Precision = .fast, stopAtEnd: Bool = true) throws -> [Int32] {
    let gguf = try GGUFFile(path: model)
    let config = try LlamaConfig(gguf: gguf)
    let weights = try LlamaWeights(gguf: gguf, layers: 0 ..< config.nLayers, embedding: true, head: true, precision: precision)
    let generator = Generator(engine: LlamaEngine(weights: weights, threads: 1), tokenizer: try Tokenizer(gguf: gguf),
                              contextLength: ClusterSettings.Default.contextLength)
    return try generator.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: steps, stopAtEndOfGeneration: stopAtEnd)).generatedIDs
}

/// The public reference prompts (llama.cpp, F32) of the default model.
struct GreedyReference: Decodable {
    struct Prompt: Decodable { let name: String; let prompt_ids: [Int32]; let generated_ids: [Int32] }
    let prompts: [Prompt]
    static func load() throws -> GreedyReference {
        try JSONDecoder().decode(GreedyReference.self, from: Data(contentsOf: TestPaths.ref("greedy_f32.json")))
    }
}

/// The explicit partition for a list of stage sizes: [2, 3, 1] → 0..<2, 2..<5, 5..<6.
func stages(_ sizes: [Int]) -> PartitionStrategy {
    var start = 0
    return .explicit(sizes.map { n in defer { start += n }; return start ..< start + n })
}

/// A DEALER that speaks to `worker` as the tests' coordinator (``TestKeys/coordinator``): over
/// CurveZMQ with the worker's key, or in the clear to an `--insecure` worker.
func coordinatorLink(_ context: ZMQContext, to worker: WorkerProcess) throws -> ZMQSocket {
    let socket = try ZMQSocket(context, type: .dealer)
    try socket.secureAsClient(worker.keys == nil ? .insecure : .curve(TestKeys.coordinator), serverKey: worker.keys?.publicKey)
    try socket.connect(worker.endpoint)
    return socket
}
