import StrataModel
import StrataWire
import ZeroMQ

/// How a coordinator runs (`strata coordinator`, `strata local`).
public struct ClusterSettings: Sendable {
    public enum Default {
        public static let contextLength = 2048
        public static let maxSequences = 64
        public static let maxWaiting = 64
        public static let prefillChunk = 512
        public static let connectTimeout: Duration = .seconds(10)
        public static let loadTimeout: Duration = .seconds(600)
        public static let workerTimeout: Duration = .seconds(2)
        public static let heartbeatInterval: Duration = .milliseconds(250)
        /// Size of the pieces a stage file is streamed in.
        public static let chunkBytes = 4 << 20
        /// Bytes of a stage file sent ahead of the worker's acknowledgements.
        public static let streamWindowBytes = 4 * chunkBytes
    }

    public var model: String
    /// Where the model's digests are cached (`DigestCache`); nil hashes the model at every start.
    public var digestCache: String? = DigestCache.defaultDirectory
    /// Worker endpoints in pipeline order, e.g. ["tcp://h1:7000", "tcp://h2:7000"].
    public var workers: [String]
    /// Workers that take no part until one of `workers` is lost: then one takes its place.
    public var standby: [String] = []
    /// Where workers started with `--join` announce themselves (e.g. "tcp://0.0.0.0:7100"); nil
    /// takes no announcements.
    public var listen: String?
    /// CurveZMQ with the coordinator's key pair, or plain links.
    public var security: LinkSecurity
    /// With CurveZMQ: each worker's public key, by endpoint (`workers`, `standby`); a worker's
    /// link cannot be made without it.
    public var workerKeys: [String: [UInt8]] = [:]
    /// With CurveZMQ and `listen`: the keys of the workers that may join (besides those of
    /// `workerKeys`). A worker's key is what it is known by; the endpoint it announces is
    /// connected to with that key.
    public var joinKeys: [[UInt8]] = []
    public var partition: PartitionStrategy = .memory
    /// Tokens per sequence (prompt and generated); capped by the model's own.
    public var contextLength = Default.contextLength
    /// Sequences in flight at once; more wait in line.
    public var maxSequences = Default.maxSequences
    /// Requests that may wait in line for a free slot; past that, `submit` refuses with `.busy`.
    public var maxWaiting = Default.maxWaiting
    public var activationType: ActivationType = .f32
    /// Threads and precision of the coordinator's own work (embedding, output head).
    public var threads = 2
    public var precision: Precision = .fast
    /// Prompt tokens per forward message.
    public var prefillChunk = Default.prefillChunk
    /// Forward messages in the pipeline at once; sequences that become ready while that many are
    /// out wait and join the next one. As many as there are stages keeps every stage busy when
    /// each has its own cores; 1 moves all sequences as one batch, best when the stages share
    /// one machine's cores (`strata local`). 0 means one per stage.
    public var microBatches = 0
    /// The workers run on this machine's cores (`strata local`): the coordinator's threads
    /// block as soon as its part of a step is done.
    public var sharedCores = false
    public var connectTimeout = Default.connectTimeout
    public var loadTimeout = Default.loadTimeout
    /// A worker silent for this long is declared lost (one whose connection breaks is lost at
    /// once), and its layers move to the workers left.
    public var workerTimeout = Default.workerTimeout
    public var heartbeatInterval = Default.heartbeatInterval

    public init(model: String, workers: [String], security: LinkSecurity) {
        self.model = model
        self.workers = workers
        self.security = security
    }

    /// The keys of every worker this coordinator knows of.
    public var trustedWorkerKeys: [[UInt8]] { Array(workerKeys.values) + joinKeys }
}

/// What the coordinator knows of one stage, for status and benchmarks.
public struct StageInfo: Sendable {
    public var endpoint: String
    public var workerID: String
    public var layers: Range<Int>
    public var memoryBytes: UInt64
    public var weightBytes: UInt64
    /// KV cache in use and the sequences holding it, as of the last heartbeat.
    public var kvCacheBytes: UInt64
    public var sequences: Int
    public var residentBytes: UInt64
    public var streamedWeights: Bool
    /// The KV cache's budget: pages of `kvPageRows` positions of one sequence.
    public var kvPages: Int
    public var kvPageRows: Int
}
