import ArgumentParser
import Foundation
import StrataCoordinator
import StrataModel

struct LocalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local",
        abstract: "Start N workers and a coordinator on this machine, generate (or serve the HTTP API), and stop them all.")

    @Option(help: "Worker processes to start.")
    var workers: Int = 3
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var prompts: PromptOptions
    @OptionGroup var serve: ServeOptions

    @Flag(help: .hidden)
    var exitWithParent = false

    @Flag(help: "Show the workers' and the coordinator's logs.")
    var verbose = false

    func validate() throws {
        guard workers >= 1, workers <= 64 else { throw ValidationError("--workers must be between 1 and 64") }
        if serve.address == nil {
            guard !prompts.prompt.isEmpty else { throw ValidationError("give at least one --prompt, or --http to serve the API") }
        } else if !prompts.prompt.isEmpty {
            throw ValidationError("give --http or --prompt, not both")
        }
        if case let .explicit(ranges) = try PartitionStrategy(parsing: cluster.partition), ranges.count != workers {
            throw ValidationError("--partition \(cluster.partition) names \(ranges.count) stages for --workers \(workers)")
        }
    }

    func run() async throws {
        // SIGTERM: the HTTP server shuts down gracefully, and the rest with it.
        if exitWithParent { watchParent { kill(getpid(), SIGTERM) } }
        let local = try LocalWorkers(count: workers, model: try modelOptions.path, threads: modelOptions.threads,
                                     precision: modelOptions.precision, verbose: verbose)
        defer { local.stop() }
        var settings = try cluster.settings(model: modelOptions, workers: local.endpoints, sharedCores: true)
        settings.maxWaiting = serve.maxWaiting
        let verbose = self.verbose
        if serve.address != nil {
            return try await serveCluster(settings, serve, chatTemplate: prompts.chatTemplate, stopWorkers: true) {
                if verbose { writeErr("coordinator: \($0)\n") }
            }
        }
        let c = try await Cluster.start(settings: settings, log: { if verbose { writeErr("coordinator: \($0)\n") } })
        defer { c.shutdown(stopWorkers: true) }
        if verbose {
            for (i, s) in c.stages.enumerated() {
                writeErr("stage \(i): \(s.endpoint), layers \(s.layers.lowerBound)-\(s.layers.upperBound - 1)\n")
            }
        }
        try await generateOnCluster(c, prompts: prompts, sampling: sampling)
    }
}
