import ArgumentParser
import Foundation
import StrataModel

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it as it is produced.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var prompts: PromptOptions

    func validate() throws {
        guard prompts.prompt.count == 1 else { throw ValidationError("give exactly one --prompt") }
    }

    func run() throws {
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
