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
    @Option(help: ArgumentHelp("Worker endpoints in pipeline order, comma-separated, each with its public key: tcp://h1:7000=w1.pub,tcp://h2:7000=w2.pub (may be left out with --listen).",
                               discussion: "The key is the worker's .pub file or the key itself; with --insecure, endpoints alone."))
    var workers: String = ""
    @Option(help: "Standby workers, as --workers: each takes the place of a lost worker until it comes back.")
    var standby: String = ""
    @Option(help: "Take workers that announce themselves (strata worker --join) at this address, e.g. tcp://0.0.0.0:7100.")
    var listen: String?
    @Option(help: ArgumentHelp("With --listen: the public keys of the workers that may join, comma-separated (.pub files, directories of them, or keys).",
                               discussion: "Default: $STRATA_WORKER_KEYS. A worker is known by its key; the endpoint it announces is connected to with that key."))
    var workerKeys: String?
    @OptionGroup var keys: KeyOptions
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
        let security = try keys.security()
        let given = try workerEndpoints(workers, option: "--workers"), standbys = try workerEndpoints(standby, option: "--standby")
        var settings = try cluster.settings(model: modelOptions, workers: given.endpoints, security: security)
        settings.standby = standbys.endpoints
        settings.listen = listen
        if security.keys != nil {
            settings.workerKeys = given.keys.merging(standbys.keys) { a, _ in a }
            if let list = workerKeys ?? environment("STRATA_WORKER_KEYS") { settings.joinKeys = try publicKeys(list, option: "--worker-keys") }
            if listen != nil, settings.trustedWorkerKeys.isEmpty {
                throw ValidationError("--listen with encrypted links takes only workers whose keys it knows: give --worker-keys")
            }
        } else if !given.keys.isEmpty || !standbys.keys.isEmpty || workerKeys != nil {
            throw ValidationError("worker keys are for encrypted links; --insecure has none")
        }
        try await runCluster(settings, serve: serve, prompts: prompts, sampling: sampling, stopWorkers: stopWorkers)
    }
}
