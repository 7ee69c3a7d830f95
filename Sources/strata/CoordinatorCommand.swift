import ArgumentParser
import Foundation
import StrataCoordinator
import StrataModel

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Cut the model into stages on running workers and generate through them.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Worker endpoints in pipeline order, comma-separated: tcp://h1:7000,tcp://h2:7000.")
    var workers: String
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var prompts: PromptOptions

    @Flag(help: "Tell the workers to exit when done.")
    var stopWorkers = false

    func validate() throws {
        guard !prompts.prompt.isEmpty else { throw ValidationError("give at least one --prompt") }
    }

    func run() throws {
        let endpoints = workers.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        let settings = try cluster.settings(model: modelOptions, workers: endpoints)
        let c = try Cluster(settings: settings, log: { writeErr("coordinator: \($0)\n") })
        defer { c.shutdown(stopWorkers: stopWorkers) }
        try generateOnCluster(c, prompts: prompts, sampling: sampling)
    }
}
