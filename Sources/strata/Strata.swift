import ArgumentParser
import StrataIdentity
import StrataWorker

@main
struct Strata: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strata",
        abstract: "Pipeline-parallel inference for Llama-architecture models.",
        version: StrataVersion.string,
        subcommands: [Generate.self, Chat.self, LocalCommand.self, WorkerCommand.self, CoordinatorCommand.self,
                      Status.self, Tokenize.self, Inspect.self, Bench.self, Soak.self, Synth.self, Plan.self, Keygen.self]
    )
}
