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

    @Flag(help: "Plain links between the processes (by default they are encrypted, with keys made for this run).")
    var insecure = false

    @Flag(help: "Show the workers' and the coordinator's logs (as --log-level info; workers log to this stderr).")
    var verbose = false

    @OptionGroup var logging: LogOptions

    func validate() throws {
        guard workers >= 1, workers <= 64 else { throw ValidationError("--workers must be between 1 and 64") }
        if serve.address == nil {
            guard !prompts.prompt.isEmpty else { throw ValidationError("give at least one --prompt, or --http to serve the API") }
        } else if !prompts.prompt.isEmpty {
            throw ValidationError("give --http or --prompt, not both")
        }
        if case let .explicit(ranges) = cluster.partition, ranges.count != workers {
            throw ValidationError("--partition \(cluster.partition) names \(ranges.count) stages for --workers \(workers)")
        }
    }

    func run() async throws {
        // SIGTERM: the HTTP server shuts down gracefully, and the rest with it.
        if exitWithParent { watchParent { kill(getpid(), SIGTERM) } }
        // Quiet by default: the answer, and the server's own lines (notice) with --http.
        logging.bootstrap(fallback: verbose ? .info : .notice)
        var extra: [String] = []
        if let level = logging.logLevel { extra = ["--log-level", level.rawValue] }
        let local = try LocalWorkers(count: workers, model: try modelOptions.path, threads: modelOptions.threads,
                                     precision: modelOptions.precision, verbose: verbose || logging.logLevel != nil, insecure: insecure,
                                     extraArguments: extra)
        defer { local.stop() }
        try await runCluster(try local.settings(cluster, model: modelOptions), serve: serve, prompts: prompts, sampling: sampling, stopWorkers: true)
    }
}
