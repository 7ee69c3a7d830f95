import ArgumentParser
import Foundation
import StrataCoordinator
import StrataModel
import StrataWire
import ZeroMQ

/// How the coordinator cuts and drives the pipeline.
struct ClusterOptions: ParsableArguments {
    @Option(help: "memory (layers in proportion to each worker's memory; the default), even, or explicit:0-9,10-19,… (inclusive layer numbers, in worker order).",
            transform: { text in
                do { return try PartitionStrategy(parsing: text) } catch { throw ValidationError("\(error)") }
            })
    var partition: PartitionStrategy = .memory

    @Option(help: "Tokens per sequence (prompt and reply).")
    var context: Int = ClusterSettings.Default.contextLength

    @Option(help: "Sequences in flight at once, as many as the workers' KV caches hold; more wait in line.")
    var maxSequences: Int = ClusterSettings.Default.maxSequences

    @Option(help: "How activations travel between stages: f32, f16, bf16 or q8_0.", transform: ActivationType.parse)
    var activations: ActivationType = .f32

    @Option(help: "Forward messages in the pipeline at once (default: one per worker, so every stage is busy; `local` and `bench` use 1, as their stages share this machine's cores).")
    var microBatches: Int?

    @Option(help: "Seconds a worker may stay silent before it is declared lost (one whose connection breaks is lost at once); its layers then move to the workers left.")
    var workerTimeout: Double = Double(ClusterSettings.Default.workerTimeout.components.seconds)

    @Option(help: "Seconds to wait for every worker to answer at start.")
    var connectTimeout: Double = 10

    func validate() throws {
        guard context >= 2 else { throw ValidationError("--context must be at least 2") }
        guard maxSequences >= 1, maxSequences <= 4096 else { throw ValidationError("--max-sequences must be between 1 and 4096") }
        guard workerTimeout > 0, connectTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        if let microBatches, microBatches < 1 { throw ValidationError("--micro-batches must be at least 1") }
    }

    /// `sharedCores`: the stages run on this machine (`local`, `bench`), so one batch at a time
    /// unless --micro-batches says otherwise.
    func settings(model: ModelOptions, workers: [String], security: LinkSecurity, sharedCores: Bool = false) throws -> ClusterSettings {
        var s = ClusterSettings(model: try model.path, workers: workers, security: security)
        s.partition = partition
        s.contextLength = context
        s.maxSequences = maxSequences
        s.activationType = activations
        s.threads = model.threads
        s.precision = model.precision
        s.workerTimeout = .milliseconds(Int(workerTimeout * 1000))
        s.connectTimeout = .milliseconds(Int(connectTimeout * 1000))
        s.microBatches = microBatches ?? (sharedCores ? 1 : 0)
        s.sharedCores = sharedCores
        return s
    }
}

/// Runs the prompts through a cluster, all at once: one prompt streams its text; several print
/// each reply as it completes, in prompt order.
func generateOnCluster(_ cluster: Cluster, prompts: PromptOptions, sampling: SamplingOptions) async throws {
    let gguf = try GGUFFile(path: cluster.settings.model)
    let ids = try prompts.prompt.map { try prompts.encode($0, gguf: gguf, tokenizer: cluster.tokenizer) }
    let options = sampling.generationOptions
    if ids.count == 1 && !prompts.json {
        let r = try await cluster.generate(promptIDs: ids[0], options: options) { piece in writeOut(piece); return true }
        writeOut("\n")
        writeErr(String(format: "prompt: %d tokens, %.1f tokens/s; decode: %d tokens, %.1f tokens/s\n",
                        r.promptIDs.count, r.promptTokensPerSecond, r.generatedIDs.count, r.decodeTokensPerSecond))
        return
    }
    for (i, r) in await cluster.generateAll(ids, options: options).enumerated() {
        let result = try r.get()
        if prompts.json {
            print(try jsonString(GenerationOutput(result)))
        } else {
            print("[\(i + 1)] \(result.text)")
        }
    }
}
