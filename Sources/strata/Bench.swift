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

    @Option(help: "Also run the decode test through a local cluster of this many worker processes, with 1, 4 and 8 concurrent streams.")
    var workers: Int?

    @OptionGroup var cluster: ClusterOptions

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
    }

    func run() async throws {
        if let api = try client.client() { return try await runServer(api) }
        if let workers { return try runCluster(workers: workers) }
        let (_, engine, _) = try modelOptions.load()
        let tokens = benchTokens(max(prompt, generate), vocabularySize: engine.config.vocabSize)
        let cache = engine.makeCache(maxSequences: 1)
        let clock = ContinuousClock()

        func prefill() throws -> Double {
            cache.release(1)
            let ids = Array(tokens.prefix(prompt))
            let start = clock.now
            var x = try engine.embed(ids)
            try engine.forward(&x, batch: ids.indices.map { BatchToken(sequence: 1, position: $0) }, cache: cache)
            _ = try engine.logits(x, rows: [ids.count - 1])
            return Double(prompt) / (clock.now - start).benchSeconds
        }
        func decode() throws -> Double {
            cache.release(1)
            let start = clock.now
            for i in 0 ..< generate {
                var x = try engine.embed([tokens[i]])
                try engine.forward(&x, batch: [BatchToken(sequence: 1, position: i)], cache: cache)
                _ = try engine.logits(x, rows: [0])
            }
            return Double(generate) / (clock.now - start).benchSeconds
        }

        _ = try prefill()  // warm-up: page in the weights
        _ = try decode()
        let pp = try (0 ..< repetitions).map { _ in try prefill() }
        let tg = try (0 ..< repetitions).map { _ in try decode() }
        let out = Output(model: try modelOptions.path, precision: modelOptions.precision, threads: modelOptions.threads,
                         isa: String(cString: qk_isa_name()), prefill_tokens: prompt, decode_tokens: generate,
                         prefill_tokens_per_second: median(pp), decode_tokens_per_second: median(tg),
                         prefill_runs: pp, decode_runs: tg)
        if json {
            print(try jsonString(out))
        } else {
            print("model      \(out.model) (\(out.precision), \(out.isa), \(out.threads) threads)")
            print(String(format: "pp%-4d     %8.1f tokens/s  (median of %d)", prompt, out.prefill_tokens_per_second, repetitions))
            print(String(format: "tg%-4d     %8.1f tokens/s  (median of %d)", generate, out.decode_tokens_per_second, repetitions))
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

extension Duration {
    var benchSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
