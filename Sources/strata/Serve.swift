import ArgumentParser
import Foundation
import StrataCoordinator
import StrataServer
import Synchronization

/// The HTTP API's flags, for `strata coordinator` and `strata local`.
struct ServeOptions: ParsableArguments {
    @Option(name: .customLong("http"),
            help: "Serve the OpenAI-compatible HTTP API at [HOST:]PORT (HOST defaults to 127.0.0.1; 0.0.0.0 listens on every interface; PORT 0 picks a free one).")
    var address: String?

    @Option(help: "Require this API key as 'Authorization: Bearer KEY' (default: $STRATA_API_KEY; none when unset).")
    var apiKey: String?

    @Option(help: "The model's name in the API (default: the file's name without .gguf).")
    var servedModelName: String?

    @Option(help: "Requests that may wait for a free sequence slot; past that, new ones get 429.")
    var maxWaiting: Int = ClusterSettings.Default.maxWaiting

    func validate() throws {
        if let address { _ = try Self.parse(address) }
        guard maxWaiting >= 0 else { throw ValidationError("--max-waiting must not be negative") }
        if apiKey?.isEmpty == true { throw ValidationError("--api-key must not be empty") }
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
        return s
    }

    static func defaultName(_ path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.lowercased().hasSuffix(".gguf") ? String(name.dropLast(5)) : name
    }
}

/// `--http`: builds the cluster behind the API, serves until SIGINT or SIGTERM, then shuts the
/// cluster down.
func serveCluster(_ settings: ClusterSettings, _ serve: ServeOptions, chatTemplate: String?, stopWorkers: Bool,
                  log: @escaping @Sendable (String) -> Void) async throws {
    let c = try await serveHTTP(try serve.serverSettings(model: settings.model), chatTemplate: chatTemplate) {
        try Cluster(settings: settings, log: log)
    }
    c?.shutdown(stopWorkers: stopWorkers)
}

/// Serves the HTTP API while `makeCluster` connects and loads the stages (until then /health
/// answers 503), until SIGINT or SIGTERM. Returns the cluster, if it came up, for shutting down.
func serveHTTP(_ settings: ServerSettings, chatTemplate: String?,
               makeCluster: @escaping @Sendable () throws -> Cluster) async throws -> Cluster? {
    let server = APIServer(settings: settings)
    let cluster = ClusterSlot()
    do {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.run { url in
                    writeErr("strata: serving the API at \(url) (\(settings.apiKey == nil ? "no API key" : "API key required"))\n")
                }
            }
            group.addTask {
                let c = try await withCheckedThrowingContinuation { (done: CheckedContinuation<Cluster, any Error>) in
                    let t = Thread { done.resume(with: Result { try makeCluster() }) }
                    t.stackSize = 4 << 20
                    t.start()
                }
                cluster.value.withLock { $0 = c }
                server.serve(c, chatTemplate: chatTemplate)
                writeErr("strata: every stage is loaded; ready\n")
            }
            // The server returns at SIGINT/SIGTERM; a cluster that cannot start ends the group.
            while let _ = try await group.next() {
                if cluster.value.withLock({ $0 == nil }) || group.isEmpty { break }
            }
            group.cancelAll()
        }
    } catch {
        if let c = cluster.value.withLock({ $0 }) { c.shutdown() }
        throw error
    }
    return cluster.value.withLock { $0 }
}

/// The cluster, once it is up.
private final class ClusterSlot: Sendable {
    let value = Mutex<Cluster?>(nil)
}
