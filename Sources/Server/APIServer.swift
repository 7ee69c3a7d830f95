import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import StrataAPI
import StrataCoordinator
import StrataModel
import Synchronization

/// How the HTTP API serves.
public struct ServerSettings: Sendable {
    /// Address to bind: loopback unless told otherwise.
    public var host = "127.0.0.1"
    /// 0 picks a free port (printed once listening).
    public var port = 8080
    /// Required as `Authorization: Bearer KEY` on every route but /health and /metrics, when set.
    public var apiKey: String?
    /// The model's name in requests and answers.
    public var modelID: String
    /// Largest request body taken.
    public var maxRequestBytes = 4 << 20
    /// Serve HTTPS with this certificate chain and private key (PEM files); plain HTTP when nil.
    public var tls: (certificate: String, key: String)?

    public init(modelID: String) { self.modelID = modelID }
}

/// A certificate or key file that cannot be used, named.
public struct TLSFileError: Error, CustomStringConvertible {
    public let description: String
}

/// The OpenAI-compatible HTTP API of a coordinator: completions and chat completions (whole or
/// streamed as server-sent events), the model list, health, status and Prometheus metrics.
///
/// It listens before the cluster is ready: until every stage is loaded, /health answers 503
/// and generation requests are refused with 503.
public final class APIServer: Sendable {
    let settings: ServerSettings
    let metrics = ServerMetrics()
    let started = Int(Date().timeIntervalSince1970)
    private let ready = Mutex<Serving?>(nil)

    /// What requests need once the cluster is up.
    struct Serving: Sendable {
        let cluster: Cluster
        let template: ChatTemplate?
        let bosText: String
        let eosText: String
    }

    public init(settings: ServerSettings) { self.settings = settings }

    /// The swift-metrics backend /metrics shows: bootstrap it as the process's
    /// (`MetricsSystem.bootstrap`) for the cluster's own metrics to appear there.
    public var metricsFactory: any MetricsFactory { metrics.factory }

    /// Starts serving requests on `cluster`, with `template` for chat completions (none: they
    /// are refused, naming /v1/completions).
    public func serve(_ cluster: Cluster, template: ChatTemplate?) {
        let tokenizer = cluster.tokenizer
        ready.withLock {
            $0 = Serving(cluster: cluster, template: template,
                         bosText: tokenizer.bosID.flatMap(tokenizer.tokenText) ?? "",
                         eosText: tokenizer.eosID.flatMap(tokenizer.tokenText) ?? "")
        }
    }

    var serving: Serving? { ready.withLock { $0 } }

    func requireServing() throws(APIError) -> Serving {
        guard let s = serving else {
            throw APIError(.serviceUnavailable, "the cluster is still loading its stages; try again when /health answers 200", code: "loading")
        }
        if let failure = s.cluster.failure {
            throw APIError(.serviceUnavailable, "the cluster has stopped serving: \(failure)", code: "unavailable")
        }
        return s
    }

    /// The HTTP server, to run as a service (swift-service-lifecycle): it serves until its
    /// service group shuts down. `onListening` receives the base URL once the socket is bound.
    /// With `tls`, it serves HTTPS only; a certificate or key that cannot be read is an error
    /// naming the file.
    public func service(logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }) throws -> some Service {
        let host = settings.host
        var server = HTTPServerBuilder.http1()
        if let tls = settings.tls {
            let chain: [NIOSSLCertificate], key: NIOSSLPrivateKey
            do { chain = try NIOSSLCertificate.fromPEMFile(tls.certificate) } catch {
                throw TLSFileError(description: "--tls-cert \(tls.certificate): not a readable PEM certificate (\(error))")
            }
            do { key = try NIOSSLPrivateKey(file: tls.key, format: .pem) } catch {
                throw TLSFileError(description: "--tls-key \(tls.key): not a readable PEM private key (\(error))")
            }
            guard !chain.isEmpty else { throw TLSFileError(description: "--tls-cert \(tls.certificate) holds no certificate") }
            server = try .tls(.http1(), tlsConfiguration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                                    privateKey: .privateKey(key)))
        }
        let scheme = settings.tls == nil ? "http" : "https"
        return Application(
            router: makeRouter(),
            server: server,
            configuration: .init(address: .hostname(host, port: settings.port), serverName: "strata"),
            onServerRunning: { channel in
                let shown = host.contains(":") ? "[\(host)]" : host
                onListening("\(scheme)://\(shown):\(channel.localAddress?.port ?? 0)")
            },
            logger: logger
        )
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestCounter(metrics: metrics))
        router.add(middleware: OpenAIErrorMiddleware())
        if let key = settings.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        router.get("/health") { [self] _, _ in health() }
        router.get("/metrics") { [self] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.exposition(cluster: serving?.cluster))))
        }
        router.get("/v1/models") { [self] _, _ in
            let context = serving?.cluster.contextLength ?? 0
            return json(ModelList(data: [.init(id: settings.modelID, created: started, context_length: context)]))
        }
        router.get("/v1/models/{id}") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            guard id == settings.modelID else { throw unknownModel(id) }
            return json(ModelList.Model(id: id, created: started, context_length: serving?.cluster.contextLength ?? 0))
        }
        router.get("/status") { [self] _, _ in json(try status()) }
        router.post("/v1/completions") { [self] request, _ in try await completions(request) }
        router.post("/v1/chat/completions") { [self] request, _ in try await chatCompletions(request) }
        return router
    }

    // MARK: Health and status

    func health() -> Response {
        struct Health: Encodable {
            var status: String
            var stages: Int
            var error: String?
        }
        guard let s = serving else { return json(Health(status: "loading", stages: 0), status: .serviceUnavailable) }
        let stages = s.cluster.stages.count
        switch s.cluster.health {
        case .serving:
            return json(Health(status: "ok", stages: stages))
        case let .recovering(why):
            return json(Health(status: "recovering", stages: stages, error: why), status: .serviceUnavailable)
        case let .unavailable(error), let .failed(error):
            return json(Health(status: "unavailable", stages: stages, error: error.description), status: .serviceUnavailable)
        }
    }

    func status() throws(APIError) -> ClusterStatus {
        let s = try requireServing()
        let c = s.cluster
        let load = c.load
        return ClusterStatus(
            model: settings.modelID, model_sha256: c.model.sha256.map { String(format: "%02x", $0) }.joined(),
            layers: c.config.nLayers, context_length: c.contextLength, max_sequences: c.settings.maxSequences,
            max_waiting: c.settings.maxWaiting, running: load.running, waiting: load.waiting,
            stages: c.stages.enumerated().map { i, st in
                ClusterStatus.Stage(index: i, endpoint: st.endpoint, worker: st.workerID, layer_start: st.layers.lowerBound,
                                    layer_end: st.layers.upperBound, memory_bytes: st.memoryBytes, weight_bytes: st.weightBytes,
                                    kv_cache_bytes: st.kvCacheBytes, kv_sequences: st.sequences, resident_bytes: st.residentBytes,
                                    streamed_weights: st.streamedWeights)
            })
    }

    func unknownModel(_ name: String) -> APIError {
        APIError(.notFound, "the model '\(name)' does not exist; this server serves '\(settings.modelID)'", param: "model", code: "model_not_found")
    }
}
