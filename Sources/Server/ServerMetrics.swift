import Foundation
import StrataCoordinator
import Synchronization

/// The server's own counters and histograms, and the Prometheus text exposition (format
/// 0.0.4) of them together with what the cluster reports: stage compute time, hop latency,
/// KV cache use per worker, the line of waiting requests.
final class ServerMetrics: Sendable {
    private struct State {
        /// Requests answered, by endpoint and HTTP status.
        var requests: [Key: UInt64] = [:]
        var promptTokens: UInt64 = 0
        var generatedTokens: UInt64 = 0
        var cancelled: UInt64 = 0
        var timeToFirstToken = Histogram(bounds: Histogram.latencyBounds)
        var interTokenLatency = Histogram(bounds: Histogram.latencyBounds)
        var requestDuration = Histogram(bounds: Histogram.latencyBounds)
    }

    struct Key: Hashable {
        var endpoint: String
        var status: Int
    }

    private let state = Mutex(State())

    func request(_ endpoint: String, status: Int) {
        state.withLock { $0.requests[Key(endpoint: endpoint, status: status), default: 0] += 1 }
    }

    /// A generation that ran: its token counts and how long it took.
    func generation(promptTokens: Int, generatedTokens: Int, seconds: Double, cancelled: Bool) {
        state.withLock {
            $0.promptTokens += UInt64(promptTokens)
            $0.generatedTokens += UInt64(generatedTokens)
            $0.requestDuration.observe(seconds)
            if cancelled { $0.cancelled += 1 }
        }
    }

    func firstToken(after seconds: Double) { state.withLock { $0.timeToFirstToken.observe(seconds) } }
    func nextToken(after seconds: Double) { state.withLock { $0.interTokenLatency.observe(seconds) } }

    /// Everything, in Prometheus' text format; the cluster's part once it is up.
    func exposition(cluster: Cluster?) -> String {
        let s = state.withLock { $0 }
        var out = PrometheusText()
        out.family("strata_requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
        for (key, n) in s.requests.sorted(by: { ($0.key.endpoint, $0.key.status) < ($1.key.endpoint, $1.key.status) }) {
            out.sample("strata_requests_total", ["endpoint": key.endpoint, "status": String(key.status)], Double(n))
        }
        out.family("strata_requests_cancelled_total", "counter", "Generations stopped because their client went away.")
        out.sample("strata_requests_cancelled_total", [:], Double(s.cancelled))
        out.family("strata_prompt_tokens_total", "counter", "Prompt tokens of the generations run.")
        out.sample("strata_prompt_tokens_total", [:], Double(s.promptTokens))
        out.family("strata_generated_tokens_total", "counter", "Tokens generated.")
        out.sample("strata_generated_tokens_total", [:], Double(s.generatedTokens))
        out.histogram("strata_time_to_first_token_seconds", "From a request's arrival to its first token.", s.timeToFirstToken)
        out.histogram("strata_inter_token_latency_seconds", "Between consecutive tokens of one request.", s.interTokenLatency)
        out.histogram("strata_request_duration_seconds", "From a generation's arrival to its last token.", s.requestDuration)

        out.family("strata_ready", "gauge", "1 once every stage is loaded and while the cluster serves, else 0.")
        out.sample("strata_ready", [:], cluster != nil && cluster?.failure == nil ? 1 : 0)
        guard let cluster else { return out.text }
        let load = cluster.load
        out.family("strata_requests_running", "gauge", "Sequences in the pipeline.")
        out.sample("strata_requests_running", [:], Double(load.running))
        out.family("strata_queue_depth", "gauge", "Requests waiting for a free sequence slot.")
        out.sample("strata_queue_depth", [:], Double(load.waiting))
        out.family("strata_queue_capacity", "gauge", "Requests that may wait before new ones are refused with 429.")
        out.sample("strata_queue_capacity", [:], Double(cluster.settings.maxWaiting))

        let stages = cluster.stages
        let labels = stages.enumerated().map { i, s in ["stage": String(i), "worker": s.endpoint] }
        out.family("strata_stage_layers", "gauge", "Decoder layers each stage holds.")
        for (l, s) in zip(labels, stages) { out.sample("strata_stage_layers", l, Double(s.layers.count)) }
        out.family("strata_worker_kv_cache_bytes", "gauge", "KV cache in use on each worker, as of its last heartbeat.")
        for (l, s) in zip(labels, stages) { out.sample("strata_worker_kv_cache_bytes", l, Double(s.kvCacheBytes)) }
        out.family("strata_worker_kv_cache_sequences", "gauge", "Sequences holding KV cache on each worker, as of its last heartbeat.")
        for (l, s) in zip(labels, stages) { out.sample("strata_worker_kv_cache_sequences", l, Double(s.sequences)) }
        out.family("strata_worker_weight_bytes", "gauge", "Weights each worker holds.")
        for (l, s) in zip(labels, stages) { out.sample("strata_worker_weight_bytes", l, Double(s.weightBytes)) }
        out.family("strata_worker_resident_bytes", "gauge", "Resident memory of each worker process.")
        for (l, s) in zip(labels, stages) { out.sample("strata_worker_resident_bytes", l, Double(s.residentBytes)) }

        let figures = cluster.pipelineFigures
        out.family("strata_stage_compute_seconds", "histogram", "Compute time of one forward message on each stage.")
        for (l, h) in zip(labels, figures.stageCompute) { out.histogramSamples("strata_stage_compute_seconds", l, h) }
        out.histogram("strata_hop_latency_seconds", "Time one hop adds to a forward message beyond computing (sending, receiving, queueing).", figures.hop)
        return out.text
    }
}

/// Builds Prometheus' text exposition format.
struct PrometheusText {
    private(set) var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
        text += name + Self.render(labels) + " " + Self.format(value) + "\n"
    }

    mutating func histogram(_ name: String, _ help: String, _ h: Histogram) {
        family(name, "histogram", help)
        histogramSamples(name, [:], h)
    }

    mutating func histogramSamples(_ name: String, _ labels: [String: String], _ h: Histogram) {
        for (bound, count) in zip(h.bounds.map(Self.format) + ["+Inf"], h.cumulativeCounts) {
            sample(name + "_bucket", labels.merging(["le": bound]) { a, _ in a }, Double(count))
        }
        sample(name + "_sum", labels, h.sum)
        sample(name + "_count", labels, Double(h.count))
    }

    private static func render(_ labels: [String: String]) -> String {
        guard !labels.isEmpty else { return "" }
        let pairs = labels.sorted { $0.key < $1.key }.map { k, v in
            let escaped = v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\(k)=\"\(escaped)\""
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    static func format(_ v: Double) -> String {
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
