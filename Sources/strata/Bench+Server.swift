import Foundation
import StrataAPI
import StrataModel

/// `strata bench --server URL`: what a client of the HTTP API sees (time to first token, decode
/// tokens/s, alone and with several streaming clients) next to `strata generate` in this process.
extension Bench {
    struct ServerOutput: Encodable {
        var server: String
        var prompt_tokens: Int
        var generated_tokens: Int
        var one_process_first_token_ms: Double
        var one_process_decode_tokens_per_second: Double
        var one_client_first_token_ms: Double
        var one_client_decode_tokens_per_second: Double
        var clients: Int
        var clients_aggregate_tokens_per_second: Double
        var clients_first_token_median_ms: Double
        var clients_decode_tokens_per_second_median: Double
    }

    func runServer(_ api: APIClient) async throws {
        let (_, engine, tokenizer) = try modelOptions.load()
        let generator = Generator(engine: engine, tokenizer: tokenizer)
        // Distinct prompts for the concurrent clients: their first token differs.
        let ids = benchTokens(prompt, vocabularySize: engine.config.vocabSize - clients)
        let options = GenerationOptions(maxTokens: generate, stopAtEndOfGeneration: false)
        let fields = {
            var f = SamplingFields()
            f.max_tokens = Number(generate)
            f.temperature = 0
            f.ignore_eos = true
            return f
        }()

        /// One generation here: time to the first text, and decode tokens/s after it.
        func local() throws -> (firstToken: Double, decode: Double) {
            let start = ContinuousClock.now
            let first = FirstText()
            let r = try generator.generate(promptIDs: ids, options: options) { piece in
                if !piece.isEmpty { first.mark() }
                return true
            }
            let seconds = ((first.instant ?? .now) - start).totalSeconds
            return (seconds, r.decodeTokensPerSecond)
        }
        func remote(_ first: Int32 = 0) async throws -> RemoteGeneration {
            try await RemoteGeneration.run(api, chat: nil, prompt: .tokens([ids[0] + first] + ids.dropFirst()), fields: fields) { _ in }
        }

        _ = try local()  // warm-up: page in the weights, both sides
        _ = try await remote()
        var localRuns: [(firstToken: Double, decode: Double)] = []
        var remoteRuns: [RemoteGeneration] = []
        for _ in 0 ..< repetitions {
            localRuns.append(try local())
            remoteRuns.append(try await remote())
        }
        var aggregates: [Double] = [], firstTokens: [Double] = [], decodes: [Double] = []
        for _ in 0 ..< max(1, repetitions / 2) {
            let start = ContinuousClock.now
            let runs = try await withThrowingTaskGroup(of: RemoteGeneration.self) { group in
                for i in 0 ..< clients { group.addTask { try await remote(Int32(i)) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let seconds = (ContinuousClock.now - start).totalSeconds
            aggregates.append(Double(runs.reduce(0) { $0 + $1.completionTokens }) / seconds)
            firstTokens += runs.map(\.firstTokenSeconds)
            decodes += runs.map(\.decodeTokensPerSecond)
        }
        let out = ServerOutput(
            server: client.server ?? "", prompt_tokens: ids.count, generated_tokens: generate,
            one_process_first_token_ms: median(localRuns.map(\.firstToken)) * 1000,
            one_process_decode_tokens_per_second: median(localRuns.map(\.decode)),
            one_client_first_token_ms: median(remoteRuns.map(\.firstTokenSeconds)) * 1000,
            one_client_decode_tokens_per_second: median(remoteRuns.map(\.decodeTokensPerSecond)),
            clients: clients, clients_aggregate_tokens_per_second: median(aggregates),
            clients_first_token_median_ms: median(firstTokens) * 1000,
            clients_decode_tokens_per_second_median: median(decodes))
        if json { return print(try jsonString(out)) }
        print("server     \(out.server); prompt \(out.prompt_tokens) tokens, \(generate) generated, greedy; medians of \(repetitions)")
        print(String(format: "one process (this one)   first token %7.1f ms, decode %6.1f tokens/s",
                     out.one_process_first_token_ms, out.one_process_decode_tokens_per_second))
        print(String(format: "one client of the API    first token %7.1f ms, decode %6.1f tokens/s (%.2f× one process)",
                     out.one_client_first_token_ms, out.one_client_decode_tokens_per_second,
                     out.one_client_decode_tokens_per_second / max(out.one_process_decode_tokens_per_second, 1e-9)))
        print(String(format: "%d streaming clients     %6.1f tokens/s in all; each: first token %.1f ms, decode %.1f tokens/s (medians)",
                     clients, out.clients_aggregate_tokens_per_second, out.clients_first_token_median_ms,
                     out.clients_decode_tokens_per_second_median))
    }
}

/// When the first text of a generation came.
private final class FirstText: @unchecked Sendable {
    private let lock = NSLock()
    private var at: ContinuousClock.Instant?
    func mark() { lock.withLock { if at == nil { at = .now } } }
    var instant: ContinuousClock.Instant? { lock.withLock { at } }
}
