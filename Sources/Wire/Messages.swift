/// The messages of Strata's wire protocol. The byte layout of each is in docs/wire-protocol.md;
/// framing is in WireMessage+Codec.swift, each message's body in its own `+Codec.swift` file.

/// What one peer says about itself when a link opens. The coordinator speaks first (role
/// `.coordinator`); a worker answers with its own hello (role `.worker`); a stage that forwards
/// activations to the next one introduces itself with role `.stage`.
public struct Hello: Sendable, Equatable {
    public enum Role: UInt8, Sendable { case coordinator = 1, worker = 2, stage = 3 }
    public var role: Role
    /// A name for logs: the worker's `--name` or host:port. At most 256 bytes of UTF-8.
    public var peerID: String
    /// The application version (`strata --version`), for messages; compatibility is decided by
    /// the protocol version in the frame header alone. At most 64 bytes.
    public var appVersion: String
    /// Bytes this worker may use for weights and caches (`--max-memory`, or what the system
    /// reports available). 0 from a coordinator.
    public var memoryBytes: UInt64
    public var threads: UInt16
    /// CPU features, e.g. ["avx2", "fma", "f16c"]. At most 64 entries of 32 bytes.
    public var cpuFeatures: [String]
    /// Models this worker holds locally (a `--model` file, cached stage files).
    public var models: [ModelIdentity]
    /// The peer's CurveZMQ public key (32 bytes) when links are encrypted; empty otherwise.
    public var curvePublicKey: [UInt8]
    /// Where a worker that announces itself to a coordinator (`strata worker --join`) listens,
    /// e.g. "tcp://10.0.0.12:7000"; empty otherwise. At most 256 bytes.
    public var endpoint: String

    public init(role: Role, peerID: String, appVersion: String, memoryBytes: UInt64 = 0, threads: UInt16 = 0,
                cpuFeatures: [String] = [], models: [ModelIdentity] = [], curvePublicKey: [UInt8] = [], endpoint: String = "") {
        self.role = role; self.peerID = peerID; self.appVersion = appVersion; self.memoryBytes = memoryBytes
        self.threads = threads; self.cpuFeatures = cpuFeatures; self.models = models; self.curvePublicKey = curvePublicKey
        self.endpoint = endpoint
    }
}

/// A model file, named by the SHA-256 of its bytes.
public struct ModelIdentity: Sendable, Equatable, Hashable {
    /// 32 bytes.
    public var sha256: [UInt8]
    public var byteCount: UInt64
    /// A display name (the file name). At most 256 bytes.
    public var name: String
    public init(sha256: [UInt8], byteCount: UInt64, name: String) {
        self.sha256 = sha256; self.byteCount = byteCount; self.name = name
    }
}

/// How activations travel between stages.
public enum ActivationType: UInt8, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, bf16 = 2
    /// Blocks of 32 values: an f16 scale then 32 int8 (ggml's Q8_0). Row length must be a
    /// multiple of 32.
    case q8_0 = 3
}

/// The coordinator gives a worker its stage.
public struct Assign: Sendable, Equatable {
    public var model: ModelIdentity
    /// Decoder layers `layerStart ..< layerEnd` of `layerCount`.
    public var layerStart: UInt32
    public var layerEnd: UInt32
    public var layerCount: UInt32
    public var stageIndex: UInt16
    public var stageCount: UInt16
    public var contextLength: UInt32
    public var maxSequences: UInt32
    /// The most rows (positions, across sequences) one forward of this plan holds: the stage
    /// refuses a forward of more before decoding it, runs at most this many at once, and sends
    /// its `rebuild` forwards in parts of at most this many.
    public var batchRows: UInt32
    public var activationType: ActivationType
    /// Where this stage sends its output: the next worker's endpoint (e.g. "tcp://10.0.0.2:7000"),
    /// or empty for the last stage, which answers the coordinator on the link it was assigned on.
    /// At most 256 bytes.
    public var nextEndpoint: String
    /// The next worker's CurveZMQ public key when links are encrypted; empty otherwise.
    public var nextCurvePublicKey: [UInt8]
    /// The previous worker's CurveZMQ public key when links are encrypted and this is not the
    /// first stage: the one key, besides the coordinator's, that may connect to send it
    /// activations. Empty otherwise.
    public var previousCurvePublicKey: [UInt8]
    /// The SHA-256 of each of the stage's tensors' data bytes, by tensor name: a worker with a
    /// copy of the model checks its own layers against them (and nothing else of the file); a
    /// worker sent the stage file checks what arrived.
    public var tensorDigests: [TensorDigest]
    /// When the worker lacks the model: the size of the stage file the coordinator will stream
    /// (a GGUF holding only this stage's tensors); 0 when not streaming.
    public var stageFileBytes: UInt64
    /// Which of the coordinator's plans this assignment belongs to; it grows with every new
    /// plan (a worker lost or joined). The top 32 bits of a forward's `requestID` name the plan
    /// the batch was sent under: a stage runs only forwards of its own plan, so that a batch
    /// still on its way under an old plan cannot touch the caches the new one is rebuilding.
    public var plan: UInt32
    /// The KV caches this stage keeps from the worker's stage of an earlier plan, when a new
    /// plan only moves the layers of a lost stage to a neighbour; nil: the caches start empty.
    public var keep: KeptCaches?

    public init(model: ModelIdentity, layerStart: UInt32, layerEnd: UInt32, layerCount: UInt32, stageIndex: UInt16,
                stageCount: UInt16, contextLength: UInt32, maxSequences: UInt32, batchRows: UInt32 = 512, activationType: ActivationType,
                nextEndpoint: String, nextCurvePublicKey: [UInt8] = [], previousCurvePublicKey: [UInt8] = [], tensorDigests: [TensorDigest] = [],
                stageFileBytes: UInt64 = 0, plan: UInt32 = 0, keep: KeptCaches? = nil) {
        self.model = model; self.layerStart = layerStart; self.layerEnd = layerEnd; self.layerCount = layerCount
        self.stageIndex = stageIndex; self.stageCount = stageCount; self.contextLength = contextLength
        self.maxSequences = maxSequences; self.batchRows = batchRows; self.activationType = activationType; self.nextEndpoint = nextEndpoint
        self.nextCurvePublicKey = nextCurvePublicKey; self.previousCurvePublicKey = previousCurvePublicKey; self.tensorDigests = tensorDigests; self.stageFileBytes = stageFileBytes
        self.plan = plan; self.keep = keep
    }
}

/// What a stage of a new plan keeps of the worker's stage of an earlier one: the KV cache of
/// the layers both hold, for the first `length` positions of each sequence named (every other
/// sequence is dropped), and the activations it logged for those positions. Layers new to the
/// stage (`rebuildStart ..< rebuildEnd`: a lost stage's, or ones another worker gave up) have
/// their KV cache rebuilt for those positions: from the activations the stage logged where they
/// begin (`rebuildFromLog`: they follow its old layers); otherwise from the rows that arrive in
/// `rebuild` forwards, from the coordinator (the embeddings, for layers from 0) or from the
/// previous stage (`sendOn` there). A worker with no stage of `fromPlan` keeps nothing, which
/// is right only when every layer of the stage is rebuilt.
public struct KeptCaches: Sendable, Equatable {
    public struct Sequence: Sendable, Equatable {
        public var sequence: UInt64
        /// Positions kept: those every stage has run.
        public var length: UInt32
        public init(sequence: UInt64, length: UInt32) { self.sequence = sequence; self.length = length }
    }
    /// The plan whose stage on this worker holds the caches (not 0).
    public var fromPlan: UInt32
    public var sequences: [Sequence]
    public var rebuildStart: UInt32
    public var rebuildEnd: UInt32
    public var rebuildFromLog: Bool
    /// The stage sends the activations it logged where its layers now end, for the positions
    /// kept, to the next stage as `rebuild` forwards, before any batch of the plan.
    public var sendOn: Bool

    public init(fromPlan: UInt32, sequences: [Sequence], rebuildStart: UInt32 = 0, rebuildEnd: UInt32 = 0, rebuildFromLog: Bool = false,
                sendOn: Bool = false) {
        self.fromPlan = fromPlan; self.sequences = sequences; self.rebuildStart = rebuildStart; self.rebuildEnd = rebuildEnd
        self.rebuildFromLog = rebuildFromLog; self.sendOn = sendOn
    }

    /// The layers whose KV cache is rebuilt (empty: none).
    public var rebuild: Range<Int> { Int(rebuildStart) ..< Int(max(rebuildStart, rebuildEnd)) }
}

/// The SHA-256 of one tensor's data bytes.
public struct TensorDigest: Sendable, Equatable {
    /// The tensor's name in the model file. At most 256 bytes.
    public var name: String
    /// 32 bytes.
    public var sha256: [UInt8]
    public init(name: String, sha256: [UInt8]) { self.name = name; self.sha256 = sha256 }
}

/// A worker's answer to an assignment (and, with `.loading`, progress while it loads).
public struct LoadReport: Sendable, Equatable {
    public enum Status: UInt8, Sendable {
        /// Weights mapped, caches ready: the stage accepts forwards.
        case ready = 0
        /// The worker has no copy of the model: stream the stage file (`WeightChunk`s).
        case needWeights = 1
        case loading = 2
    }
    public var status: Status
    /// Bytes of weights this stage holds.
    public var weightBytes: UInt64
    /// Bytes its KV cache may grow to: `kvPages` pages.
    public var kvCacheBytes: UInt64
    /// Resident memory of the worker process now.
    public var residentBytes: UInt64
    public var loadMilliseconds: UInt32
    /// With `.loading` while a stage file streams in: the bytes of it written so far. The
    /// coordinator sends more only as these come back.
    public var receivedBytes: UInt64
    /// With `.ready`: the KV cache's budget, in pages of `kvPageRows` positions of one sequence.
    /// The coordinator admits sequences by the pages they take on every stage.
    public var kvPages: UInt32
    public var kvPageRows: UInt32
    /// The plan of the assignment this answers (`Assign.plan`).
    public var plan: UInt32
    public init(status: Status, weightBytes: UInt64 = 0, kvCacheBytes: UInt64 = 0, residentBytes: UInt64 = 0,
                loadMilliseconds: UInt32 = 0, receivedBytes: UInt64 = 0, kvPages: UInt32 = 0, kvPageRows: UInt32 = 0,
                plan: UInt32 = 0) {
        self.status = status; self.weightBytes = weightBytes; self.kvCacheBytes = kvCacheBytes
        self.residentBytes = residentBytes; self.loadMilliseconds = loadMilliseconds; self.receivedBytes = receivedBytes
        self.kvPages = kvPages; self.kvPageRows = kvPageRows
        self.plan = plan
    }
}

/// A piece of a stage file streamed from the coordinator to a worker that has no copy.
public struct WeightChunk: Sendable, Equatable {
    public var offset: UInt64
    public var totalBytes: UInt64
    /// CRC-32 (IEEE, as zlib) of `data`, checked by the decoder.
    public var crc32: UInt32
    /// At most 16 MiB.
    public var data: [UInt8]
    public init(offset: UInt64, totalBytes: UInt64, data: [UInt8]) {
        self.offset = offset; self.totalBytes = totalBytes; self.data = data; self.crc32 = CRC32.checksum(data)
    }
}

/// Hidden states on their way through the pipeline (`.forward`) or back to the coordinator
/// (`.result`). Both kinds share this layout.
public struct Activations: Sendable, Equatable {
    /// One run of consecutive tokens of one sequence.
    public struct Entry: Sendable, Equatable {
        public var sequence: UInt64
        /// Position of the first token.
        public var position: UInt32
        public var tokenCount: UInt32
        public init(sequence: UInt64, position: UInt32, tokenCount: UInt32) {
            self.sequence = sequence; self.position = position; self.tokenCount = tokenCount
        }
    }
    /// Chosen by the coordinator; results carry it back.
    public var requestID: UInt64
    /// Only the last row of each entry goes back to the coordinator (it samples from those).
    public var lastRowsOnly: Bool
    /// A forward that rebuilds the KV cache of the layers a stage took over from a lost one
    /// (`KeptCaches`): it runs those layers only, over positions the stage holds, and goes no
    /// further. Never set in a result.
    public var rebuild: Bool
    public var type: ActivationType
    /// Row length (the model's embedding size). At most 65536.
    public var dim: UInt32
    /// At most 4096 entries; their token counts sum to at most 65536 rows.
    public var entries: [Entry]
    /// Nanoseconds each stage spent computing this batch, appended stage by stage (at most 256).
    public var stageNanos: [UInt64]
    /// rows × dim values encoded as `type` (rows = the entries' token counts, or the entry
    /// count in a result with `lastRowsOnly`).
    public var payload: [UInt8]

    public init(requestID: UInt64, lastRowsOnly: Bool, rebuild: Bool = false, type: ActivationType, dim: UInt32, entries: [Entry],
                stageNanos: [UInt64] = [], payload: [UInt8]) {
        self.requestID = requestID; self.lastRowsOnly = lastRowsOnly; self.rebuild = rebuild; self.type = type; self.dim = dim
        self.entries = entries; self.stageNanos = stageNanos; self.payload = payload
    }

    /// Rows the payload holds.
    public var rowCount: Int { entries.reduce(0) { $0 + Int($1.tokenCount) } }
}

/// Liveness and load, both ways: the coordinator sends one, the worker answers with its figures.
public struct Heartbeat: Sendable, Equatable {
    public var nonce: UInt64
    public var sequences: UInt32
    public var kvCacheBytes: UInt64
    public var residentBytes: UInt64
    public init(nonce: UInt64, sequences: UInt32 = 0, kvCacheBytes: UInt64 = 0, residentBytes: UInt64 = 0) {
        self.nonce = nonce; self.sequences = sequences; self.kvCacheBytes = kvCacheBytes; self.residentBytes = residentBytes
    }
}

/// Drop these sequences' KV cache (at most 4096).
///
/// A release travels the pipeline like activations when `passOn` is set: the coordinator sends
/// it to the first stage of `plan`, and each stage passes it on to its next stage of that plan
/// after every batch it sent before. A stage therefore frees a sequence's pages before a batch
/// of a sequence started after the release can reach it, which a release sent to every stage
/// at once (over links that are not ordered with each other) could not promise.
public struct Release: Sendable, Equatable {
    public var sequences: [UInt64]
    /// The plan whose pipeline the release travels (0 when it does not travel).
    public var plan: UInt32
    /// Whether the stage passes the release on to its next stage of `plan`.
    public var passOn: Bool
    public init(_ sequences: [UInt64], plan: UInt32 = 0, passOn: Bool = false) {
        self.sequences = sequences; self.plan = plan; self.passOn = passOn
    }
}

/// A failure, named. The body of an error frame never changes between protocol versions, so a
/// peer of any version can read why it was refused.
public struct WireErrorMessage: Sendable, Equatable, Error {
    public enum Code: UInt16, Sendable {
        case unsupportedVersion = 1, unknownKind = 2, malformed = 3, unknownPeer = 4, notAssigned = 5
        case modelMismatch = 6, outOfMemory = 7, contextOverflow = 8, loadFailed = 9, busy = 10, `internal` = 11
        /// The sender's key is not trusted for what it asked.
        case unauthorized = 12
        /// A code this build does not know (from a newer peer).
        case other = 0xFFFF
    }
    public var code: Code
    /// The request or sequence the error is about, 0 if none.
    public var requestID: UInt64
    /// At most 4096 bytes of UTF-8.
    public var message: String
    public init(code: Code, requestID: UInt64 = 0, message: String) {
        self.code = code; self.requestID = requestID; self.message = message
    }
}

/// Every message, as the decoder returns it.
public enum WireMessage: Sendable, Equatable {
    case hello(Hello)
    case assign(Assign)
    case loadReport(LoadReport)
    case weightChunk(WeightChunk)
    case forward(Activations)
    case result(Activations)
    case release(Release)
    case heartbeat(Heartbeat)
    case error(WireErrorMessage)
    /// Stop serving and exit (sent by `strata local` and tests; the worker answers nothing).
    case shutdown
}
