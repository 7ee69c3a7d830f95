import ArgumentParser
import StrataModel

/// The prompt flags of the commands that generate: text, chat template, output form.
struct PromptOptions: ParsableArguments {
    @Option(help: "The prompt (repeatable where noted). Special-token text such as <|im_start|> is parsed as the token.")
    var prompt: [String] = []

    @Flag(help: "Wrap the prompt in the model's chat template as a user message.")
    var chat = false

    @Option(help: "Chat template to use instead of the one the file names (chatml, llama3, llama2, zephyr).")
    var chatTemplate: String?

    @Option(help: "System message, with --chat.")
    var system: String?

    @Flag(help: "Print one JSON object per prompt (ids, text, speeds) instead of streaming text.")
    var json = false

    /// The token ids of each prompt, rendered through the chat template when asked.
    func encode(_ prompt: String, gguf: GGUFFile, tokenizer: Tokenizer) throws -> [Int32] {
        var text = prompt
        if chat {
            let template = try ChatTemplate.resolve(named: chatTemplate, jinja: try gguf.optionalString("tokenizer.chat_template"))
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            text = template.render(messages, addGenerationPrompt: true, bosToken: tokenizer.bosText, eosToken: tokenizer.eosText)
        }
        return tokenizer.encode(text, addBOS: tokenizer.addBOS, parseSpecial: true)
    }
}

/// What `--json` prints for one generation.
struct GenerationOutput: Encodable {
    var prompt_ids: [Int32]
    var generated_ids: [Int32]
    var text: String
    var finish_reason: String
    var prompt_tokens_per_second: Double
    var decode_tokens_per_second: Double

    init(_ r: GenerationResult) {
        prompt_ids = r.promptIDs
        generated_ids = r.generatedIDs
        text = r.text
        finish_reason = r.finishReason.rawValue
        prompt_tokens_per_second = r.promptTokensPerSecond
        decode_tokens_per_second = r.decodeTokensPerSecond
    }
}
