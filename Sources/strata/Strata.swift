import ArgumentParser

@main
struct Strata: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strata",
        abstract: "Pipeline-parallel inference for Llama-architecture models.",
        version: "0.1.0",
        subcommands: [Generate.self, Chat.self, Tokenize.self, Inspect.self, Bench.self]
    )
}
