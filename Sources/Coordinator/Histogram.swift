/// A cumulative histogram in Prometheus' sense: counts of observations at or below each bound,
/// their sum and their number. Values are seconds unless a caller says otherwise.
public struct Histogram: Sendable {
    /// Upper bounds of the buckets, increasing; the last bucket (+Inf) is implied.
    public let bounds: [Double]
    /// Observations in each bucket (not cumulative); one more than `bounds`, for +Inf.
    public private(set) var counts: [UInt64]
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    public init(bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "histogram bounds must increase")
        self.bounds = bounds
        counts = [UInt64](repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        let i = bounds.firstIndex { value <= $0 } ?? bounds.count
        counts[i] += 1
        sum += value
        count += 1
    }

    /// Counts at or below each bound, then the total (+Inf).
    public var cumulativeCounts: [UInt64] {
        var total: UInt64 = 0
        return counts.map { total += $0; return total }
    }

    /// Latency buckets from 50 µs to 30 s.
    public static let latencyBounds: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]
}

/// What the pipeline's messages measured: each stage's compute time per message and the
/// latency each hop added on top of computing (see `LatencyRecorder`), as histograms since the
/// cluster started, and the raw samples since the last `Cluster.latencyFigures(reset:)`.
public struct PipelineFigures: Sendable {
    public var stageCompute: [Histogram]
    public var hop: Histogram
    var samples = LatencyRecorder()

    init(stages: Int) {
        stageCompute = [Histogram](repeating: Histogram(bounds: Histogram.latencyBounds), count: stages)
        hop = Histogram(bounds: Histogram.latencyBounds)
    }

    mutating func record(roundTripNanos: UInt64, stageNanos: [UInt64], hops: Int) {
        for (i, nanos) in stageNanos.prefix(stageCompute.count).enumerated() {
            stageCompute[i].observe(Double(nanos) * 1e-9)
        }
        let compute = stageNanos.reduce(0, +)
        let perHop = roundTripNanos > compute ? (roundTripNanos - compute) / UInt64(max(hops, 1)) : 0
        hop.observe(Double(perHop) * 1e-9)
        samples.record(perHopNanos: perHop, computeNanos: compute)
    }
}
