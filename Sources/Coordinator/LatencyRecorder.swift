/// Per-hop latency the pipeline adds on top of computing: for each forward message, the time
/// from sending it to stage 0 until its result came back, minus the compute time every stage
/// reported, divided by the hops it made (stages + 1). It holds sending, receiving, encoding,
/// decoding and queueing — everything a network of stages costs over one process.
public struct LatencyRecorder: Sendable {
    public private(set) var perHopNanos: [UInt64] = []
    public private(set) var computeNanos: [UInt64] = []
    static let capacity = 1 << 16

    mutating func record(perHopNanos perHop: UInt64, computeNanos compute: UInt64) {
        guard perHopNanos.count < Self.capacity else { return }
        perHopNanos.append(perHop)
        computeNanos.append(compute)
    }

    public mutating func reset() {
        perHopNanos.removeAll(keepingCapacity: true)
        computeNanos.removeAll(keepingCapacity: true)
    }

    /// The `q`-quantile (0…1) of the per-hop latencies, in microseconds.
    public func perHopMicroseconds(quantile q: Double) -> Double {
        guard !perHopNanos.isEmpty else { return 0 }
        let sorted = perHopNanos.sorted()
        let i = min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))
        return Double(sorted[i]) / 1000
    }
}
