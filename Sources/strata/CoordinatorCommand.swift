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
    @Option(help: "Worker endpoints in pipeline order, comma-separated: tcp://h1:7000,tcp://h2:7000 (may be left out with --listen).")
    var workers: String = ""
    @Option(help: "Standby workers, comma-separated: each takes the place of a lost worker until it comes back.")
    var standby: String = ""
    @Option(help: "Take workers that announce themselves (strata worker --join) at this address, e.g. tcp://0.0.0.0:7100.")
    var listen: String?
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
        if Self.list(workers).isEmpty && listen == nil { throw ValidationError("give --workers, or --listen for workers that join") }
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        // SIGTERM: the HTTP server shuts down gracefully, and the rest with it.
        if exitWithParent { watchParent { kill(getpid(), SIGTERM) } }
        logging.bootstrap()
        var settings = try cluster.settings(model: modelOptions, workers: Self.list(workers))
        settings.standby = Self.list(standby)
        settings.listen = listen
        try await runCluster(settings, serve: serve, prompts: prompts, sampling: sampling, stopWorkers: stopWorkers)
    }
}
