import ArgumentParser
import Foundation
import QuantKernels
import StrataModel

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode tokens per second, like llama-bench (pp128, tg64).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Prompt tokens for the prefill test.")
    var prompt = 128

    @Option(help: "Tokens for the decode test.")
    var generate = 64

    @Option(help: "Repetitions; the median is reported.")
    var repetitions = 5

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: "Also decode this many sequences together as one batch (after their prompts) and report the aggregate tokens/s, like llama-batched-bench's S_TG.")
    var parallel: Int?

    @Option(help: "Also run the decode test through a local cluster of this many worker processes, with 1, 4 and 8 concurrent streams.")
    var workers: Int?

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "With --workers: plain links (by default they are encrypted with keys made for the run), to measure what CurveZMQ costs.")
    var insecure = false

    @OptionGroup var client: ClientOptions

    @Option(help: "With --server: concurrent streaming clients for the aggregate figure.")
    var clients = 8

    struct Output: Encodable {
        var model: String
        var precision: String
        var threads: Int
        var isa: String
        var prefill_tokens: Int
        var decode_tokens: Int
        var prefill_tokens_per_second: Double
        var decode_tokens_per_second: Double
        var prefill_runs: [Double]
        var decode_runs: [Double]
        var parallel_sequences: Int?
        var parallel_decode_tokens_per_second: Double?
        var parallel_decode_runs: [Double]?
        /// Weight bytes one decode step reads, the GB/s decode reads them at, and the GB/s a plain
        /// read of the same bytes on the same threads reaches (the bandwidth ceiling).
        var decode_weight_bytes: Int
        var decode_weight_gigabytes_per_second: Double
        var weight_read_gigabytes_per_second: Double
    }

    func validate() throws {
        guard prompt >= 1, generate >= 1, repetitions >= 1 else { throw ValidationError("--prompt, --generate and --repetitions must be at least 1") }
        if let parallel, !(1 ... 256).contains(parallel) { throw ValidationError("--parallel must be between 1 and 256") }
    }

    func run() async throws {
        if let api = try client.client() { return try await runServer(api) }
        if let workers { return try await runCluster(workers: workers) }
        let (_, engine, _) = try modelOptions.load()
        let tokens = benchTokens(max(prompt, generate), vocabularySize: engine.config.vocabSize)
        // Room for the longest run only: a model's full context (32k for some) would reserve for nothing.
        let cache = engine.makeCache(maxSequences: max(1, parallel ?? 1), contextLength: prompt + generate)
        let clock = ContinuousClock()

        func prefill() throws -> Double {
            cache.release(1)
            let ids = Array(tokens.prefix(prompt))
            let start = clock.now
            var x = try engine.embed(ids)
            try engine.forward(&x, batch: ids.indices.map { BatchToken(sequence: 1, position: $0) }, cache: cache)
            _ = try engine.logits(x, rows: [ids.count - 1])
            return Double(prompt) / (clock.now - start).totalSeconds
        }
        func decode() throws -> Double {
            cache.release(1)
            let start = clock.now
            for i in 0 ..< generate {
                var x = try engine.embed([tokens[i]])
                try engine.forward(&x, batch: [BatchToken(sequence: 1, position: i)], cache: cache)
                _ = try engine.logits(x, rows: [0])
            }
            return Double(generate) / (clock.now - start).totalSeconds
        }

        /// `n` sequences, each after its own prompt (prefilled once, not timed), decode `generate`
        /// steps together: one batch of `n` tokens per step. Each run rewinds them to their prompts.
        func prefillSequences(_ n: Int) throws {
            for s in 1 ... n {
                cache.release(SequenceID(s))
                let ids = (0 ..< prompt).map { tokens[($0 + s) % tokens.count] }
                var x = try engine.embed(ids)
                try engine.forward(&x, batch: ids.indices.map { BatchToken(sequence: SequenceID(s), position: $0) }, cache: cache)
            }
        }
        func parallelDecode(_ n: Int) throws -> Double {
            for s in 1 ... n { cache.truncate(SequenceID(s), to: prompt) }
            let start = clock.now
            for i in 0 ..< generate {
                var x = try engine.embed((1 ... n).map { tokens[($0 + i) % tokens.count] })
                try engine.forward(&x, batch: (1 ... n).map { BatchToken(sequence: SequenceID($0), position: prompt + i) }, cache: cache)
                _ = try engine.logits(x, rows: Array(0 ..< n))
            }
            return Double(n * generate) / (clock.now - start).totalSeconds
        }

        _ = try prefill()  // warm-up: page in the weights
        _ = try decode()
        let pp = try (0 ..< repetitions).map { _ in try prefill() }
        let tg = try (0 ..< repetitions).map { _ in try decode() }
        let pd = try parallel.map { n in
            try prefillSequences(n)
            return try (0 ..< repetitions).map { _ in try parallelDecode(n) }
        }
        let bandwidth = engine.weightReadBandwidth()
        let out = Output(model: try modelOptions.path, precision: modelOptions.precision.rawValue, threads: modelOptions.threads,
                         isa: String(cString: qk_isa_name()), prefill_tokens: prompt, decode_tokens: generate,
                         prefill_tokens_per_second: median(pp), decode_tokens_per_second: median(tg),
                         prefill_runs: pp, decode_runs: tg, parallel_sequences: parallel,
                         parallel_decode_tokens_per_second: pd.map(median), parallel_decode_runs: pd,
                         decode_weight_bytes: engine.decodeWeightBytes,
                         decode_weight_gigabytes_per_second: median(tg) * Double(engine.decodeWeightBytes) / 1e9,
                         weight_read_gigabytes_per_second: bandwidth)
        if json {
            print(try jsonString(out))
        } else {
            print("model      \(out.model) (\(out.precision), \(out.isa), \(out.threads) threads)")
            print(String(format: "pp%-4d     %8.1f tokens/s  (median of %d)", prompt, out.prefill_tokens_per_second, repetitions))
            print(String(format: "tg%-4d     %8.1f tokens/s  (median of %d)", generate, out.decode_tokens_per_second, repetitions))
            print(String(format: "decode reads %.2f GB of weights per token: %.1f GB/s, %.0f%% of a plain read of them (%.1f GB/s)",
                         Double(out.decode_weight_bytes) / 1e9, out.decode_weight_gigabytes_per_second,
                         100 * out.decode_weight_gigabytes_per_second / out.weight_read_gigabytes_per_second,
                         out.weight_read_gigabytes_per_second))
            if let parallel, let tps = out.parallel_decode_tokens_per_second {
                print(String(format: "tg%-4d x%-3d %7.1f tokens/s in all, %d sequences decoded as one batch (median of %d)",
                             generate, parallel, tps, parallel, repetitions))
            }
        }
    }
}

/// Fixed pseudo-random token ids below `vocabularySize`, as llama-bench uses random ones.
func benchTokens(_ count: Int, vocabularySize: Int) -> [Int32] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0 ..< count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int32((state >> 33) % UInt64(vocabularySize))
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
