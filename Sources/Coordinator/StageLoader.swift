import Logging
import StrataModel
import StrataWire
import ZeroMQ

/// What the coordinator needs to cut its model into stages and hand them out: the file, its
/// identity and tensor digests, and what each layer costs a worker.
struct StagePlanner {
    let settings: ClusterSettings
    let file: GGUFFile
    let model: ModelIdentity
    /// SHA-256 of every tensor of the model (hex), for the stages to check what they load.
    let tensorDigests: [String: String]
    let layerCount: Int
    let contextLength: Int
    /// Each layer's weights and the KV cache of one sequence at full context.
    let layerBytes: [UInt64]
    /// The most rows one forward holds (`Assign.batchRows`): a prompt chunk and a decode row
    /// of every sequence, fewer where that many rows of f32 would pass the wire's payload limit.
    let batchRows: Int

    init(settings: ClusterSettings, file: GGUFFile, config: LlamaConfig, model: ModelIdentity,
         tensorDigests: [String: String], contextLength: Int) throws(ClusterError) {
        self.settings = settings
        self.file = file
        self.model = model
        self.tensorDigests = tensorDigests
        self.contextLength = contextLength
        layerCount = config.nLayers
        let weights: [Int]
        do { weights = try (0 ..< config.nLayers).map { l throws(GGUFError) in try StageFile.weightBytes(in: file, layers: l ..< l + 1) } } catch {
            throw .model("cannot cut \(settings.model) into layers: \(error)")
        }
        layerBytes = layerCosts(weights: weights, kvDim: config.kvDim, context: contextLength)
        batchRows = max(1, min(settings.prefillChunk + settings.maxSequences, Wire.maxPayloadBytes / (config.dim * 4), Wire.Limits.rows))
    }

    /// The layers of each of `workers`, in order, by `strategy`; an error names the worker a
    /// stage does not fit.
    func ranges(for workers: [WorkerLink], strategy: PartitionStrategy) throws(ClusterError) -> [Range<Int>] {
        do {
            return try partitionLayers(strategy, layerBytes: layerBytes, memory: workers.map { $0.hello?.memoryBytes ?? 0 })
        } catch {
            if case let .doesNotFit(stage, layers, needs, offers) = error {
                throw .doesNotFit(endpoint: workers[stage].endpoint, layers: layers, needs: needs, offers: offers, context: contextLength)
            }
            throw .partition(error)
        }
    }

    /// The assignment of `link`'s layers as stage `stage` of `pipeline`, under `plan`.
    func assignment(_ link: WorkerLink, stage: Int, of pipeline: [WorkerLink], plan: UInt32,
                    stageFileBytes: Int = 0, keep: KeptCaches? = nil) throws(ClusterError) -> Assign {
        let next = stage + 1 < pipeline.count ? pipeline[stage + 1] : nil
        let previous = stage > 0 ? pipeline[stage - 1] : nil
        let names: [String]
        do { names = try StageFile.tensorNames(in: file, layers: link.layers) } catch {
            throw .model("cannot cut layers \(link.layers) out of \(settings.model): \(error)")
        }
        let digests = names.map { TensorDigest(name: $0, sha256: ModelDigests.bytes(hex: tensorDigests[$0] ?? "") ?? []) }
        return Assign(model: model, layerStart: UInt32(link.layers.lowerBound), layerEnd: UInt32(link.layers.upperBound),
                      layerCount: UInt32(layerCount), stageIndex: UInt16(stage), stageCount: UInt16(pipeline.count),
                      contextLength: UInt32(contextLength), maxSequences: UInt32(settings.maxSequences),
                      batchRows: UInt32(batchRows), activationType: settings.activationType, nextEndpoint: next?.endpoint ?? "",
                      nextCurvePublicKey: next?.publicKey ?? [], previousCurvePublicKey: previous?.publicKey ?? [], tensorDigests: digests,
                      stageFileBytes: UInt64(stageFileBytes), plan: plan, keep: keep)
    }
}

/// Hands one plan's stages to their workers and follows them until every one is loaded, without
/// blocking: `handle` takes each message a worker sends, `pump` streams stage files to workers
/// without a copy of the model. Used at start and for every re-plan.
final class StageLoader {
    let plan: UInt32
    let pipeline: [WorkerLink]
    /// What each stage keeps of its caches under the plan before (`SchedulerDriver.keptPlan`);
    /// empty: every cache starts empty.
    let keeps: [ObjectIdentifier: KeptCaches]
    private let planner: StagePlanner
    private let logger: Logger
    /// Stage files on their way to workers without a copy of the model, all at once.
    private var streams: [ObjectIdentifier: StageStream] = [:]
    let started = ContinuousClock.now

    /// Sends every worker of `pipeline` its stage of `ranges`.
    init(planner: StagePlanner, pipeline: [WorkerLink], ranges: [Range<Int>], plan: UInt32,
         keeps: [ObjectIdentifier: KeptCaches] = [:], logger: Logger) throws(ClusterError) {
        self.plan = plan
        self.pipeline = pipeline
        self.keeps = keeps
        self.planner = planner
        self.logger = logger
        for (i, (link, range)) in zip(pipeline, ranges).enumerated() {
            link.stage = i
            link.layers = range
            link.report = nil
            link.streamed = false
        }
        for link in pipeline {
            let message = try planner.assignment(link, stage: link.stage, of: pipeline, plan: plan, keep: keeps[ObjectIdentifier(link)])
            do { try link.send(.assign(message)) } catch { throw .unreachable(endpoint: link.endpoint, seconds: 0) }
        }
    }

    /// Every stage is loaded.
    var isDone: Bool { pipeline.allSatisfy { $0.report?.status == .ready } }

    func has(_ link: WorkerLink) -> Bool { pipeline.contains { $0 === link } }

    /// Takes a load report from a worker of the plan (reports of an earlier plan are ignored);
    /// a worker's error is thrown as its refusal.
    func handle(_ link: WorkerLink, _ message: WireMessage) throws(ClusterError) {
        guard has(link) else { return }
        switch message {
        case let .loadReport(r) where r.plan == plan:
            link.report = r
            switch r.status {
            case .needWeights:
                streams[ObjectIdentifier(link)] = try streamWeights(to: link)
            case .loading:
                streams[ObjectIdentifier(link)]?.acknowledge(r.receivedBytes)
            case .ready:
                streams[ObjectIdentifier(link)] = nil
                logger.info("""
                    loaded layers \(link.layers.lowerBound)-\(link.layers.upperBound - 1), \
                    \(r.weightBytes >> 20) MiB of weights, in \(r.loadMilliseconds) ms
                    """, metadata: ["stage": "\(link.stage)", "worker": "\(link.endpoint)"])
            }
        case let .error(e) where e.requestID == 0:
            throw link.refusal(e)
        default:
            break
        }
    }

    /// Sends stage file chunks while their windows have room.
    func pump() throws(ClusterError) {
        for stream in streams.values { try stream.pump() }
    }

    /// Starts streaming the stage file of its layers to a worker that has no copy of the model:
    /// the assignment again, now with the file's size, then checksummed chunks as the worker
    /// acknowledges them (`StageStream`).
    private func streamWeights(to link: WorkerLink) throws(ClusterError) -> StageStream {
        let writer: GGUFWriter
        do { writer = try StageFile.writer(from: planner.file, layers: link.layers, modelSHA256: ModelDigests.hex(planner.model.sha256)) } catch {
            throw .model("cannot cut layers \(link.layers) out of \(planner.settings.model): \(error)")
        }
        let stream = StageStream(to: link, file: writer, chunkBytes: ClusterSettings.Default.chunkBytes,
                                 window: ClusterSettings.Default.streamWindowBytes, logger: logger)
        logger.info("streaming \(ByteProgress.size(stream.byteCount)) of layers \(link.layers.lowerBound)-\(link.layers.upperBound - 1)",
                    metadata: ["stage": "\(link.stage)", "worker": "\(link.endpoint)"])
        link.streamed = true
        let message = try planner.assignment(link, stage: link.stage, of: pipeline, plan: plan, stageFileBytes: stream.byteCount,
                                             keep: keeps[ObjectIdentifier(link)])
        do { try link.send(.assign(message)) } catch { throw .unreachable(endpoint: link.endpoint, seconds: 0) }
        try stream.pump()
        return stream
    }
}
