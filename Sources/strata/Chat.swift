import ArgumentParser
import Foundation
import StrataAPI
import StrataModel

struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk with the model interactively.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Chat template to use instead of the one the file names (chatml, llama3, llama2, zephyr).")
    var chatTemplate: String?

    @Option(help: "System message.")
    var system: String?

    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard client.server != nil || modelOptions.model != nil else { throw ValidationError("give --model FILE, or --server URL") }
        if client.server != nil {
            guard modelOptions.model == nil else { throw ValidationError("give --model or --server, not both") }
            guard chatTemplate == nil else { throw ValidationError("--chat-template is the server's to choose; leave it out with --server") }
        }
    }

    func run() async throws {
        if let api = try client.client() { return try await runRemote(api) }
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

extension Chat {
    /// The conversation through a running coordinator's API; the whole history goes with each turn.
    func runRemote(_ api: APIClient) async throws {
        var messages: [ChatRequest.Message] = system.map { [.init(role: "system", content: $0)] } ?? []
        writeErr("Chat with the model at \(client.server!); an empty line or end of input quits.\n")
        while true {
            writeOut("> ")
            guard let line = readLine(), !line.isEmpty else { break }
            messages.append(.init(role: "user", content: line))
            let r = try await RemoteGeneration.run(api, chat: messages, prompt: nil, fields: sampling.requestFields) { writeOut($0) }
            writeOut("\n")
            messages.append(.init(role: "assistant", content: r.text))
        }
    }
}
