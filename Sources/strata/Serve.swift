import ArgumentParser
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import StrataCoordinator
import StrataModel
import StrataServer

/// The HTTP API's flags, for `strata coordinator` and `strata local`.
struct ServeOptions: ParsableArguments {
    @Option(name: .customLong("http"),
            help: "Serve the OpenAI-compatible HTTP API at [HOST:]PORT (HOST defaults to 127.0.0.1; 0.0.0.0 listens on every interface; PORT 0 picks a free one).")
    var address: String?

    @Option(help: "Require this API key as 'Authorization: Bearer KEY' (default: $STRATA_API_KEY; none when unset).")
    var apiKey: String?

    @Option(help: "Serve HTTPS with this certificate (PEM, the chain from the server's certificate up); with --tls-key.")
    var tlsCert: String?

    @Option(help: "The certificate's private key (PEM).")
    var tlsKey: String?

    @Option(help: "The model's name in the API (default: the file's name without .gguf).")
    var servedModelName: String?

    @Option(help: "Requests that may wait for a free sequence slot; past that, new ones get 429.")
    var maxWaiting: Int = ClusterSettings.Default.maxWaiting

    func validate() throws {
        if let address { _ = try Self.parse(address) }
        guard maxWaiting >= 0 else { throw ValidationError("--max-waiting must not be negative") }
        if apiKey?.isEmpty == true { throw ValidationError("--api-key must not be empty") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("give --tls-cert and --tls-key together") }
        if tlsCert != nil && address == nil { throw ValidationError("--tls-cert is for --http") }
    }

    static func parse(_ address: String) throws -> (host: String, port: Int) {
        var host = "127.0.0.1"
        var portText = address
        if let colon = address.lastIndex(of: ":") {
            host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            portText = String(address[address.index(after: colon)...])
        }
        guard !host.isEmpty, let port = Int(portText), (0 ... 65535).contains(port) else {
            throw ValidationError("--http '\(address)': expected [HOST:]PORT, e.g. 8080 or 127.0.0.1:8080")
        }
        return (host, port)
    }

    func serverSettings(model: String) throws -> ServerSettings {
        let (host, port) = try Self.parse(address ?? "8080")
        var s = ServerSettings(modelID: servedModelName ?? Self.defaultName(model))
        s.host = host
        s.port = port
        s.apiKey = apiKey ?? ProcessInfo.processInfo.environment["STRATA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if let tlsCert, let tlsKey { s.tls = (tlsCert, tlsKey) }
        return s
    }

    static func defaultName(_ path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.lowercased().hasSuffix(".gguf") ? String(name.dropLast(5)) : name
    }
}

/// `--http`: serves the HTTP API while the cluster connects and loads its stages (until then
/// /health answers 503), then serves the cluster, until SIGINT or SIGTERM, at any moment,
/// loading included. Both run as services of one service group (swift-service-lifecycle):
/// on a signal the cluster shuts down first (ending what runs with "shutting down"), then the
/// HTTP server. A cluster that cannot start ends the group with its error.
func serveCluster(_ settings: ClusterSettings, _ serve: ServeOptions, chatTemplate: String?, stopWorkers: Bool) async throws {
    let serverSettings = try serve.serverSettings(model: settings.model)
    // A bad --chat-template is an error now, not at the first chat request.
    let template: ChatTemplate?
    do {
        let jinja = try GGUFFile(path: settings.model).optionalString("tokenizer.chat_template")
        template = chatTemplate == nil ? try? ChatTemplate.resolve(named: nil, jinja: jinja) : try ChatTemplate.resolve(named: chatTemplate, jinja: jinja)
    }
    let server = APIServer(settings: serverSettings)
    MetricsSystem.bootstrap(server.metricsFactory)
    let logger = Logger(label: "strata.http")
    let http = try server.service(logger: logger) { url in
        logger.notice("serving the API at \(url) (\(serverSettings.apiKey == nil ? "no API key" : "API key required"))")
    }
    let cluster = ClusterService(settings: settings, server: server, template: template, stopWorkers: stopWorkers)
    let group = ServiceGroup(configuration: .init(
        services: [.init(service: http), .init(service: cluster, successTerminationBehavior: .gracefullyShutdownGroup)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

/// The cluster behind the API, as a service: it starts the cluster (stopping at once if asked
/// to shut down meanwhile), hands it to the server, and shuts it down when the group does.
struct ClusterService: Service {
    let settings: ClusterSettings
    let server: APIServer
    let template: ChatTemplate?
    let stopWorkers: Bool
    let logger = Logger(label: "strata.coordinator")

    func run() async throws {
        let cluster: Cluster
        do {
            cluster = try await cancelWhenGracefulShutdown { [settings, logger] in try await Cluster.start(settings: settings, logger: logger) }
        } catch ClusterError.shutDown {
            logger.notice("stopped while loading")
            return
        }
        server.serve(cluster, template: template)
        if case .serving = cluster.health {
            logger.notice("every stage is loaded; ready")
        } else {
            logger.notice("serving; no worker has joined yet (/health answers 503 until one does)")
        }
        try? await gracefulShutdown()
        cluster.shutdown(stopWorkers: stopWorkers)
    }
}
