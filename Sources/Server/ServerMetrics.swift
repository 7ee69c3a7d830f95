import Foundation
import Metrics
import Prometheus
import StrataAPI
import StrataCoordinator
import Synchronization

/// The server's metrics, in a swift-prometheus registry: its own counters and histograms, and at
/// each scrape, gauges of what the cluster reports (the line, KV cache use per worker). The
/// cluster's pipeline timings (stage compute time, hop latency) reach the same registry through
/// swift-metrics, once `factory` is bootstrapped as the process's metrics backend.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// A swift-metrics backend writing into `registry`, with latency buckets from 50 µs to 30 s.
    var factory: PrometheusMetricsFactory {
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = Self.latencyBuckets
        return f
    }

    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]

    private let cancelled: Prometheus.Counter
    private let promptTokens: Prometheus.Counter
    private let generatedTokens: Prometheus.Counter
    private let timeToFirstToken: DurationHistogram
    private let interTokenLatency: DurationHistogram
    private let requestDuration: DurationHistogram
    private let ready: Prometheus.Gauge

    init() {
        let registry = registry
        func counter(_ name: String, _ help: String) -> Prometheus.Counter {
            registry.makeCounter(descriptor: Self.named(name, help))
        }
        func histogram(_ name: String, _ help: String) -> DurationHistogram {
            registry.makeDurationHistogram(descriptor: Self.named(name, help), buckets: Self.latencyBuckets)
        }
        cancelled = counter("strata_requests_cancelled_total", "Generations stopped because their client went away.")
        promptTokens = counter("strata_prompt_tokens_total", "Prompt tokens of the generations run.")
        generatedTokens = counter("strata_generated_tokens_total", "Tokens generated.")
        timeToFirstToken = histogram("strata_time_to_first_token_seconds", "From a request's arrival to its first token.")
        interTokenLatency = histogram("strata_inter_token_latency_seconds", "Between consecutive tokens of one request.")
        requestDuration = histogram("strata_request_duration_seconds", "From a generation's arrival to its last token.")
        ready = registry.makeGauge(descriptor: Self.named("strata_ready", "1 once every stage is loaded and while the cluster serves, else 0."))
    }

    /// A metric's whole name (its unit already in it) and help text.
    private static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// A request answered, by endpoint and HTTP status.
    func request(_ endpoint: String, status: Int) {
        registry.makeCounter(descriptor: Self.named("strata_requests_total", "HTTP requests answered, by endpoint and status code."),
                             labels: [("endpoint", endpoint), ("status", String(status))]).increment()
    }

    /// A generation that ran: its token counts and how long it took.
    func generation(promptTokens: Int, generatedTokens: Int, duration: Duration, cancelled: Bool) {
        self.promptTokens.increment(by: Int64(promptTokens))
        self.generatedTokens.increment(by: Int64(generatedTokens))
        requestDuration.record(duration)
        if cancelled { self.cancelled.increment() }
    }

    func firstToken(after duration: Duration) { timeToFirstToken.record(duration) }
    func nextToken(after duration: Duration) { interTokenLatency.record(duration) }

    /// Everything, in Prometheus' text format, with the cluster's gauges as of now.
    func exposition(cluster: Cluster?) -> String {
        let serving = if case .serving? = cluster?.health { true } else { false }
        ready.set(Int64(serving ? 1 : 0))
        if let cluster { record(cluster) }
        return registry.emitToString()
    }

    private func record(_ cluster: Cluster) {
        let load = cluster.load
        registry.makeGauge(descriptor: Self.named("strata_requests_running", "Sequences in the pipeline.")).set(Int64(load.running))
        registry.makeGauge(descriptor: Self.named("strata_queue_depth", "Requests waiting for a free sequence slot.")).set(Int64(load.waiting))
        registry.makeGauge(descriptor: Self.named("strata_queue_capacity", "Requests that may wait before new ones are refused with 429."))
            .set(Int64(cluster.settings.maxWaiting))
        for (i, s) in cluster.stages.enumerated() {
            let labels = [("stage", String(i)), ("worker", s.endpoint)]
            func gauge(_ name: String, _ help: String, _ value: some BinaryInteger) {
                registry.makeGauge(descriptor: Self.named(name, help), labels: labels).set(Int64(value))
            }
            gauge("strata_stage_layers", "Decoder layers each stage holds.", s.layers.count)
            gauge("strata_worker_kv_cache_bytes", "KV cache in use on each worker, as of its last heartbeat.", s.kvCacheBytes)
            gauge("strata_worker_kv_cache_sequences", "Sequences holding KV cache on each worker, as of its last heartbeat.", s.sequences)
            gauge("strata_worker_weight_bytes", "Weights each worker holds.", s.weightBytes)
            gauge("strata_worker_resident_bytes", "Resident memory of each worker process.", s.residentBytes)
        }
    }
}
