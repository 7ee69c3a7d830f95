import ArgumentParser
import Foundation
import Logging
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
        var settings = try cluster.settings(model: modelOptions, workers: endpoints)
        settings.maxWaiting = serve.maxWaiting
        if serve.address != nil {
            return try await serveCluster(settings, serve, chatTemplate: prompts.chatTemplate, stopWorkers: stopWorkers)
        }
        let logger = Logger(label: "strata.coordinator")
        let c = try await Cluster.start(settings: settings, logger: logger)
        defer { c.shutdown(stopWorkers: stopWorkers) }
        for (i, s) in c.stages.enumerated() {
            logger.info("layers \(s.layers.lowerBound)-\(s.layers.upperBound - 1)", metadata: ["stage": "\(i)", "worker": "\(s.endpoint)"])
        }
        if !prompts.prompt.isEmpty {
            return try await generateOnCluster(c, prompts: prompts, sampling: sampling)
        }
        // No --prompt: one prompt per line from stdin, answered in turn, until end of input.
        logger.notice("ready; reading one prompt per line from stdin")
        while let line = readLine(strippingNewline: true) {
            guard !line.isEmpty else { continue }
            var one = prompts
            one.prompt = [line]
            do { try await generateOnCluster(c, prompts: one, sampling: sampling) } catch let error as ClusterError {
                writeErr("error: \(error)\n")
                if case .workerLost = error { throw error }
            }
        }
    }
}
