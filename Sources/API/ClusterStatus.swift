/// What `GET /status` answers and `strata status` shows.
public struct ClusterStatus: Codable, Sendable {
    public var model: String
    public var model_sha256: String
    public var layers: Int
    public var context_length: Int
    public var max_sequences: Int
    public var max_waiting: Int
    public var running: Int
    public var waiting: Int
    public var stages: [Stage]

    public struct Stage: Codable, Sendable {
        public var index: Int
        public var endpoint: String
        public var worker: String
        /// Layers `layer_start ..< layer_end`.
        public var layer_start: Int
        public var layer_end: Int
        public var memory_bytes: UInt64
        public var weight_bytes: UInt64
        public var kv_cache_bytes: UInt64
        public var kv_sequences: Int
        public var resident_bytes: UInt64
        public var streamed_weights: Bool

        public init(index: Int, endpoint: String, worker: String, layer_start: Int, layer_end: Int, memory_bytes: UInt64,
                    weight_bytes: UInt64, kv_cache_bytes: UInt64, kv_sequences: Int, resident_bytes: UInt64, streamed_weights: Bool) {
            self.index = index; self.endpoint = endpoint; self.worker = worker; self.layer_start = layer_start
            self.layer_end = layer_end; self.memory_bytes = memory_bytes; self.weight_bytes = weight_bytes
            self.kv_cache_bytes = kv_cache_bytes; self.kv_sequences = kv_sequences; self.resident_bytes = resident_bytes
            self.streamed_weights = streamed_weights
        }
    }

    public init(model: String, model_sha256: String, layers: Int, context_length: Int, max_sequences: Int, max_waiting: Int,
                running: Int, waiting: Int, stages: [Stage]) {
        self.model = model; self.model_sha256 = model_sha256; self.layers = layers; self.context_length = context_length
        self.max_sequences = max_sequences; self.max_waiting = max_waiting; self.running = running; self.waiting = waiting
        self.stages = stages
    }
}
