import Foundation
import Logging
import StrataCoordinator

/// What `strata coordinator` and `strata local` do once their workers are known: with --http,
/// serve the API until SIGINT or SIGTERM; else start the cluster, answer the prompts given
/// (all at once), or with none, one prompt per line of stdin; then stop the workers when told.
func runCluster(_ settings: ClusterSettings, serve: ServeOptions, prompts: PromptOptions, sampling: SamplingOptions,
                stopWorkers: Bool) async throws {
    var settings = settings
    settings.maxWaiting = serve.maxWaiting
    if serve.address != nil {
        return try await serveCluster(settings, serve, chatTemplate: prompts.chatTemplate, stopWorkers: stopWorkers)
    }
    let logger = Logger(label: "strata.coordinator")
    let cluster = try await Cluster.start(settings: settings, logger: logger)
    defer { cluster.shutdown(stopWorkers: stopWorkers) }
    for (i, s) in cluster.stages.enumerated() {
        logger.info("layers \(s.layers.lowerBound)-\(s.layers.upperBound - 1)", metadata: ["stage": "\(i)", "worker": "\(s.endpoint)"])
    }
    if !prompts.prompt.isEmpty {
        return try await generateOnCluster(cluster, prompts: prompts, sampling: sampling)
    }
    logger.notice("ready; reading one prompt per line from stdin")
    while let line = readLine(strippingNewline: true) {
        guard !line.isEmpty else { continue }
        var one = prompts
        one.prompt = [line]
        do { try await generateOnCluster(cluster, prompts: one, sampling: sampling) } catch let error as ClusterError {
            writeErr("error: \(error)\n")
            if case .workerLost = error { throw error }
        }
    }
}
