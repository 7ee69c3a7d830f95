import ArgumentParser
import Foundation
import StrataModel

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it as it is produced.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "The prompt. Special-token text such as <|im_start|> is parsed as the token.")
    var prompt: String

    @Flag(help: "Wrap the prompt in the model's chat template as a user message.")
    var chat = false

    @Option(help: "Chat template to use instead of the one the file names (chatml, llama3, llama2, zephyr).")
    var chatTemplate: String?

    @Option(help: "System message, with --chat.")
    var system: String?

    @Flag(help: "Print one JSON object (ids, text, speeds) instead of streaming text.")
    var json = false

    struct Output: Encodable {
        var prompt_ids: [Int32]
        var generated_ids: [Int32]
        var text: String
        var finish_reason: String
        var prompt_tokens_per_second: Double
        var decode_tokens_per_second: Double
    }

    func run() throws {
        let (gguf, engine, tokenizer) = try modelOptions.load()
        var text = prompt
        if chat {
            let template = try ChatTemplate.resolve(named: chatTemplate, jinja: try gguf.optionalString("tokenizer.chat_template"))
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            text = template.render(messages, addGenerationPrompt: true, bosToken: tokenizer.bosText, eosToken: tokenizer.eosText)
        }
        let ids = tokenizer.encode(text, addBOS: tokenizer.addBOS, parseSpecial: true)
        let generator = Generator(engine: engine, tokenizer: tokenizer)
        let result = try generator.generate(promptIDs: ids, options: sampling.generationOptions) { piece in
            if !json { writeOut(piece) }
            return true
        }
        if json {
            print(try jsonString(Output(
                prompt_ids: result.promptIDs, generated_ids: result.generatedIDs, text: result.text,
                finish_reason: result.finishReason.rawValue,
                prompt_tokens_per_second: result.promptTokensPerSecond,
                decode_tokens_per_second: result.decodeTokensPerSecond)))
        } else {
            writeOut("\n")
            writeErr(String(format: "prompt: %d tokens, %.1f tokens/s; decode: %d tokens, %.1f tokens/s\n",
                            result.promptIDs.count, result.promptTokensPerSecond,
                            result.generatedIDs.count, result.decodeTokensPerSecond))
        }
    }
}
