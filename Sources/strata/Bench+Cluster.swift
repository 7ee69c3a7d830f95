import Foundation
import StrataCoordinator
import StrataModel

/// `strata bench --workers N`: decode through a local pipeline next to one process.
extension Bench {
    struct ClusterOutput: Encodable {
        struct Streams: Encodable {
            var streams: Int
            var aggregate_tokens_per_second: Double
            var per_stream_tokens_per_second: Double
        }
        struct Worker: Encodable {
            var endpoint: String
            var layers: String
            var weight_bytes: UInt64
            var kv_cache_bytes: UInt64
            var resident_bytes: UInt64
        }
        var model: String
        var workers: Int
        var threads_per_process: Int
        var activations: String
        /// "curve" or "plain".
        var links: String
        var micro_batches: Int
        var one_process_decode_tokens_per_second: Double
        /// One process decoding 8 sequences as one batch: the ceiling for 8 streams.
        var one_process_batch8_tokens_per_second: Double
        var one_stream_decode_tokens_per_second: Double
        var ratio_to_one_process: Double
        var concurrent: [Streams]
        var hop_latency_median_us: Double
        var hop_latency_p99_us: Double
        var stage_compute_median_us: Double
        var worker_memory: [Worker]
    }

    func runCluster(workers count: Int) async throws {
        // One process and the cluster side by side, their runs interleaved: this machine's
        // speed drifts, and a ratio means something only between neighbouring runs.
        let (_, engine, tokenizer) = try modelOptions.load()
        let generator = Generator(engine: engine, tokenizer: tokenizer)
        // Eight prompt tokens below the vocabulary size less 8, so that streams can differ in
        // their first token (see `aggregate`).
        let benchPrompt = benchTokens(8, vocabularySize: engine.config.vocabSize - 8)
        let local = try LocalWorkers(count: count, model: try modelOptions.path, threads: modelOptions.threads,
                                     precision: modelOptions.precision, verbose: false, insecure: insecure)
        defer { local.stop() }
        var settings = try local.settings(cluster, model: modelOptions)
        settings.maxSequences = max(settings.maxSequences, 8)
        let c = try await Cluster.start(settings: settings)
        defer { c.shutdown(stopWorkers: true) }

        _ = try generator.generate(promptIDs: benchPrompt, options: benchOptions)  // warm-up: page in the weights
        _ = try await c.generate(promptIDs: benchPrompt, options: benchOptions)
        _ = c.latencyFigures(reset: true)
        var oneProcessRuns: [Double] = [], oneStreamRuns: [Double] = [], batchedRuns: [Double] = []
        for _ in 0 ..< repetitions {
            oneProcessRuns.append(try generator.generate(promptIDs: benchPrompt, options: benchOptions).decodeTokensPerSecond)
            oneStreamRuns.append(try await c.generate(promptIDs: benchPrompt, options: benchOptions).decodeTokensPerSecond)
        }
        for _ in 0 ..< max(1, repetitions / 2) { batchedRuns.append(try batchedDecode(engine, prompt: benchPrompt, streams: 8)) }
        let oneProcess = median(oneProcessRuns), oneStream = median(oneStreamRuns), batched = median(batchedRuns)
        // Each pair of neighbouring runs gives a ratio; their median is steadier than a ratio of medians.
        let ratio = median(zip(oneStreamRuns, oneProcessRuns).map { $0 / $1 })
        let latency = c.latencyFigures(reset: true)
        let computeMedian = latency.computeNanos.isEmpty ? 0 : Double(latency.computeNanos.sorted()[latency.computeNanos.count / 2]) / 1000

        var concurrent: [ClusterOutput.Streams] = []
        for streams in [1, 4, 8] {
            var runs: [Double] = []
            for _ in 0 ..< max(1, repetitions / 2) { runs.append(try await aggregate(c, prompt: benchPrompt, streams: streams)) }
            let agg = median(runs)
            concurrent.append(.init(streams: streams, aggregate_tokens_per_second: agg, per_stream_tokens_per_second: agg / Double(streams)))
        }
        usleep(600_000)  // one more heartbeat, for fresh memory figures
        let memory = c.stages.map {
            ClusterOutput.Worker(endpoint: $0.endpoint, layers: "\($0.layers.lowerBound)-\($0.layers.upperBound - 1)",
                                 weight_bytes: $0.weightBytes, kv_cache_bytes: $0.kvCacheBytes, resident_bytes: $0.residentBytes)
        }
        let out = ClusterOutput(model: try modelOptions.path, workers: count, threads_per_process: modelOptions.threads,
                                activations: cluster.activations.name, links: insecure ? "plain" : "curve", micro_batches: settings.microBatches,
                                one_process_decode_tokens_per_second: oneProcess,
                                one_process_batch8_tokens_per_second: batched,
                                one_stream_decode_tokens_per_second: oneStream, ratio_to_one_process: ratio,
                                concurrent: concurrent, hop_latency_median_us: latency.perHopMicroseconds(quantile: 0.5),
                                hop_latency_p99_us: latency.perHopMicroseconds(quantile: 0.99),
                                stage_compute_median_us: computeMedian, worker_memory: memory)
        if json {
            print(try jsonString(out))
            return
        }
        print("model      \(out.model), \(count) workers, \(out.threads_per_process) threads each, \(out.activations) activations, " +
              "\(settings.microBatches == 0 ? count : settings.microBatches) micro-batches, \(insecure ? "plain links" : "CurveZMQ links")")
        print(String(format: "decode, one process        %8.1f tokens/s", oneProcess))
        print(String(format: "decode, one process, 8 sequences batched %8.1f tokens/s in all", batched))
        print(String(format: "decode, one stream         %8.1f tokens/s  (%.2f× one process)", oneStream, out.ratio_to_one_process))
        for s in concurrent {
            print(String(format: "decode, %d streams          %8.1f tokens/s in all (%.1f per stream)", s.streams,
                         s.aggregate_tokens_per_second, s.per_stream_tokens_per_second))
        }
        print(String(format: "added latency per hop      median %.0f µs, p99 %.0f µs (stage compute median %.0f µs)",
                     out.hop_latency_median_us, out.hop_latency_p99_us, computeMedian))
        for w in memory {
            print("worker \(w.endpoint) layers \(w.layers): resident \(w.resident_bytes >> 20) MiB, weights \(w.weight_bytes >> 20) MiB, KV cache now \(w.kv_cache_bytes >> 20) MiB")
        }
    }

    /// One process decoding `streams` sequences in lockstep, one batch per step: tokens/s in all.
    private func batchedDecode(_ engine: LlamaEngine, prompt: [Int32], streams: Int) throws -> Double {
        let cache = engine.makeCache(maxSequences: streams)
        var tokens: [Int32] = []
        var batch: [BatchToken] = []
        for s in 0 ..< streams {
            tokens += prompt
            batch += prompt.indices.map { BatchToken(sequence: SequenceID(s + 1), position: $0) }
        }
        var x = try engine.embed(tokens)
        try engine.forward(&x, batch: batch, cache: cache)
        var next = [Int32](repeating: prompt[0], count: streams)
        let start = ContinuousClock.now
        for step in 0 ..< generate {
            var h = try engine.embed(next)
            try engine.forward(&h, batch: (0 ..< streams).map { BatchToken(sequence: SequenceID($0 + 1), position: prompt.count + step) },
                               cache: cache)
            let logits = try engine.logits(h, rows: Array(0 ..< streams))
            let vocab = logits.count / streams
            next = (0 ..< streams).map { s in
                Int32(logits[s * vocab ..< (s + 1) * vocab].indices.max { logits[$0] < logits[$1] }! - s * vocab)
            }
        }
        return Double(streams * generate) / (ContinuousClock.now - start).totalSeconds
    }

    private var benchOptions: GenerationOptions {
        GenerationOptions(maxTokens: generate, stopAtEndOfGeneration: false)
    }

    /// Tokens per second over `streams` generations running at once, from the first
    /// submission until the last one ends.
    private func aggregate(_ c: Cluster, prompt: [Int32], streams: Int) async throws -> Double {
        let prompts = (0 ..< streams).map { i in [prompt[0] + Int32(i)] + prompt.dropFirst() }  // distinct prompts
        let options = benchOptions
        let start = ContinuousClock.now
        let results = await c.generateAll(prompts, options: options)
        let seconds = (ContinuousClock.now - start).totalSeconds
        let total = try results.reduce(0) { $0 + (try $1.get().generatedIDs.count) }
        return Double(total) / seconds
    }
}
