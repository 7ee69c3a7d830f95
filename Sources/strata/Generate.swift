import ArgumentParser
import Foundation
import StrataAPI
import StrataModel

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it as it is produced.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var prompts: PromptOptions
    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard prompts.prompt.count == 1 else { throw ValidationError("give exactly one --prompt") }
        guard client.server != nil || modelOptions.model != nil else { throw ValidationError("give --model FILE, or --server URL") }
        if client.server != nil {
            guard modelOptions.model == nil else { throw ValidationError("give --model or --server, not both") }
            guard prompts.chatTemplate == nil else { throw ValidationError("--chat-template is the server's to choose; leave it out with --server") }
        }
    }

    func run() async throws {
        if let api = try client.client() { return try await runRemote(api) }
        let (gguf, engine, tokenizer) = try modelOptions.load()
        let ids = try prompts.encode(prompts.prompt[0], gguf: gguf, tokenizer: tokenizer)
        let generator = Generator(engine: engine, tokenizer: tokenizer)
        let result = try generator.generate(promptIDs: ids, options: sampling.generationOptions) { piece in
            if !prompts.json { writeOut(piece) }
            return true
        }
        if prompts.json {
            print(try jsonString(GenerationOutput(result)))
        } else {
            writeOut("\n")
            writeErr(String(format: "prompt: %d tokens, %.1f tokens/s; decode: %d tokens, %.1f tokens/s\n",
                            result.promptIDs.count, result.promptTokensPerSecond,
                            result.generatedIDs.count, result.decodeTokensPerSecond))
        }
    }
}

extension Generate {
    /// The same through a running coordinator's API: `--chat` becomes a chat completion.
    func runRemote(_ api: APIClient) async throws {
        var messages: [ChatRequest.Message]?
        if prompts.chat {
            messages = (prompts.system.map { [.init(role: "system", content: $0)] } ?? []) + [.init(role: "user", content: prompts.prompt[0])]
        }
        let json = prompts.json
        let r = try await RemoteGeneration.run(api, chat: messages, prompt: .one(prompts.prompt[0]), fields: sampling.requestFields) { piece in
            if !json { writeOut(piece) }
        }
        if json {
            print(try jsonString(RemoteOutput(text: r.text, finish_reason: r.finishReason, prompt_tokens: r.promptTokens,
                                              completion_tokens: r.completionTokens, time_to_first_token_ms: r.firstTokenSeconds * 1000,
                                              decode_tokens_per_second: r.decodeTokensPerSecond)))
        } else {
            writeOut("\n")
            writeErr(r.summary)
        }
    }

    /// What `--json` prints for a generation through `--server`.
    struct RemoteOutput: Encodable {
        var text: String
        var finish_reason: String
        var prompt_tokens: Int
        var completion_tokens: Int
        var time_to_first_token_ms: Double
        var decode_tokens_per_second: Double
    }
}
