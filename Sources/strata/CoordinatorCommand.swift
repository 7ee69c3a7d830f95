import ArgumentParser
import Foundation
import StrataCoordinator
import StrataModel

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Cut the model into stages on running workers and generate through them.",
        discussion: """
            With --http, serves the OpenAI-compatible API until SIGINT or SIGTERM. With --prompt, answers those \
            prompts (all at once) and exits. With neither, answers one prompt per line of stdin.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Worker endpoints in pipeline order, comma-separated: tcp://h1:7000,tcp://h2:7000.")
    var workers: String
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var prompts: PromptOptions
    @OptionGroup var serve: ServeOptions

    @Flag(help: .hidden)
    var exitWithParent = false

    @Flag(help: "Tell the workers to exit when done.")
    var stopWorkers = false

    @OptionGroup var logging: LogOptions

    func validate() throws {
        if serve.address != nil && !prompts.prompt.isEmpty { throw ValidationError("give --http or --prompt, not both") }
    }

    func run() async throws {
        // SIGTERM: the HTTP server shuts down gracefully, and the rest with it.
        if exitWithParent { watchParent { kill(getpid(), SIGTERM) } }
        logging.bootstrap()
        let endpoints = workers.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        try await runCluster(try cluster.settings(model: modelOptions, workers: endpoints), serve: serve, prompts: prompts,
                             sampling: sampling, stopWorkers: stopWorkers)
    }
}
