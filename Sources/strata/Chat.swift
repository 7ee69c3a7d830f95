import ArgumentParser
import Foundation
import StrataModel

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk with the model interactively.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Chat template to use instead of the one the file names (chatml, llama3, llama2, zephyr).")
    var chatTemplate: String?

    @Option(help: "System message.")
    var system: String?

    func run() throws {
        let (gguf, engine, tokenizer) = try modelOptions.load()
        let template = try ChatTemplate.resolve(named: chatTemplate, jinja: try gguf.optionalString("tokenizer.chat_template"))
        let generator = Generator(engine: engine, tokenizer: tokenizer)
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        writeErr("Chat with the model; an empty line or end of input quits.\n")
        while true {
            writeOut("> ")
            guard let line = readLine(), !line.isEmpty else { break }
            messages.append(ChatMessage(role: "user", content: line))
            // The whole conversation is rendered and run again each turn.
            let text = template.render(messages, addGenerationPrompt: true, bosToken: tokenizer.bosText, eosToken: tokenizer.eosText)
            let ids = tokenizer.encode(text, addBOS: tokenizer.addBOS, parseSpecial: true)
            let result = try generator.generate(promptIDs: ids, options: sampling.generationOptions) { piece in
                writeOut(piece)
                return true
            }
            writeOut("\n")
            messages.append(ChatMessage(role: "assistant", content: result.text))
        }
    }
}
