import Foundation
import Logging
import StrataIdentity
import StrataModel
import StrataWire
import ZeroMQ

/// The worker process: listens on a ROUTER socket for the coordinator and the previous stage,
/// loads the layers it is assigned, runs every batch that arrives and passes the activations
/// straight on to the next stage (the last stage answers the coordinator).
public final class WorkerServer: @unchecked Sendable {
    public let settings: WorkerSettings
    private let context: ZMQContext
    private let router: ZMQSocket
    /// The endpoint actually bound (a `*` port resolved).
    public let endpoint: String

    /// The local copy of the model (checked at start), if the worker has one.
    private let modelFile: GGUFFile?
    private let digests: DigestCache
    /// Who may do what, and where the stage is.
    private var protocolState = WorkerStateMachine()
    private var stage: Stage?
    private var next: ZMQSocket?
    private var download: StageDownload?
    private var running = true

    public init(settings: WorkerSettings) throws {
        self.settings = settings
        // Check the file now: a worker with a broken model should fail at start, not at
        // assignment. Its bytes are checked at assignment, and only those of the stage's layers.
        modelFile = try settings.model.map { path in try GGUFFile(path: path) }
        digests = DigestCache(directory: (settings.cacheDirectory as NSString).appendingPathComponent("digests"))
        context = try ZMQContext()
        router = try ZMQSocket(context, type: .router)
        try router.configureAsPeerLink(maxMessageBytes: Wire.maxFrameBytes)
        try router.setRouterMandatory(true)
        try router.setRouterHandover(true)
        try router.bind(settings.listen)
        endpoint = try router.lastEndpoint()
        logger = Logger(label: "strata.worker")
        logger[metadataKey: "worker"] = "\(settings.name ?? endpoint)"
    }

    private var name: String { settings.name ?? endpoint }

    /// Logs with the worker's name, and once assigned, its stage.
    private var logger: Logger

    private func log(_ message: String, _ level: Logger.Level = .info) {
        logger.log(level: level, "\(message)")
    }

    /// Serves until a coordinator sends `shutdown` or `stop()` is called.
    public func run() throws {
        log("listening" + (settings.model.map { ", model \($0)" } ?? ", no local model"))
        while running {
            var items: [(ZMQSocket, ZMQPollEvents)] = [(router, .readable)]
            if let next { items.append((next, .readable)) }
            guard let ready = try poll(items) else { return }
            if ready.count > 1, ready[1].contains(.readable) { try drainNext() }
            if ready[0].contains(.readable) { try serveWaiting() }
        }
    }

    /// Polls; nil once the context is shut down.
    private func poll(_ items: [(ZMQSocket, ZMQPollEvents)]) throws -> [ZMQPollEvents]? {
        do {
            return try ZMQ.poll(items, timeoutMilliseconds: 1000)
        } catch {
            if error.isTerminated { return nil }
            throw error
        }
    }

    /// Takes every message waiting, so that activations that arrived together run as one batch.
    private func serveWaiting() throws {
        var forwards: [Activations] = []
        while running, let frames = try receive(dontWait: true) {
            for action in protocolState.received(frames) {
                if case let .run(a) = action { forwards.append(a) } else { perform(action) }
            }
        }
        if !forwards.isEmpty { runForwards(forwards) }
    }

    /// Makes `run()` return (from any thread).
    public func stop() {
        context.shutdown()
    }

    private func receive(dontWait: Bool) throws -> [[UInt8]]? {
        do {
            return try router.receive(dontWait: dontWait)
        } catch {
            if error.isTerminated { running = false; return nil }
            throw error
        }
    }

    private func send(_ message: WireMessage, to peer: [UInt8]) {
        do { try router.send([peer, message.encoded()], dontWait: true) } catch {
            log("cannot answer a peer: \(error)", .warning)
        }
    }

    private func sendCoordinator(_ message: WireMessage) {
        guard let coordinator = protocolState.coordinator else { log("no coordinator to tell: \(message.kind)"); return }
        send(message, to: coordinator)
    }

    // MARK: Control

    private func perform(_ action: WorkerStateMachine.Action) {
        switch action {
        case let .send(message, peer): send(message, to: peer)
        case let .greet(peer): send(.hello(hello()), to: peer)
        case let .assign(a):
            do { try assign(a) } catch {
                log("assignment failed: \(error.message)", .error)
                protocolState.assignmentFailed()
                sendCoordinator(.error(error))
            }
        case let .storeChunk(chunk): store(chunk)
        case let .run(a): runForwards([a])
        case let .release(sequences): for s in sequences { stage?.cache.release(s) }
        case let .answerHeartbeat(nonce, peer):
            let cache = stage?.cache
            send(.heartbeat(Heartbeat(nonce: nonce, sequences: UInt32(cache?.sequences.count ?? 0),
                                      kvCacheBytes: UInt64(cache?.byteCount ?? 0), residentBytes: SystemInfo.residentBytes())), to: peer)
        case .stop: running = false
        case let .log(message): log(message)
        }
    }

    /// A chunk of the streamed stage file: written, acknowledged, and once the file is complete,
    /// checked and loaded.
    private func store(_ chunk: WeightChunk) {
        guard let download else { return }
        do throws(WireErrorMessage) {
            try download.append(chunk)
            sendCoordinator(.loadReport(LoadReport(status: .loading, receivedBytes: download.received)))
            if download.isComplete {
                self.download = nil
                try download.finish()
                let file: GGUFFile
                do { file = try GGUFFile(path: download.destination) } catch {
                    throw WireErrorMessage(code: .loadFailed, message: "worker \(name): the streamed stage file is not a valid GGUF: \(error)")
                }
                try verify(file, against: download.assign, what: "the streamed stage file")
                try load(file, assign: download.assign, started: .now)
            }
        } catch {
            download.abandon()
            self.download = nil
            protocolState.assignmentFailed()
            sendCoordinator(.error(error))
        }
    }

    private func hello() -> Hello {
        Hello(role: .worker, peerID: name, appVersion: StrataVersion.string, memoryBytes: memoryLimit,
              threads: UInt16(settings.threads), cpuFeatures: SystemInfo.cpuFeatures())
    }

    /// `--max-memory`, else what the cgroup and the system allow.
    private var memoryLimit: UInt64 { settings.maxMemory > 0 ? settings.maxMemory : SystemInfo.memoryLimit() }

    private func cachePath(_ a: Assign) -> String {
        (settings.cacheDirectory as NSString).appendingPathComponent(
            "\(ModelDigests.hex(a.model.sha256))-\(a.layerStart)-\(a.layerEnd).gguf")
    }

    private func assign(_ a: Assign) throws(WireErrorMessage) {
        let started = ContinuousClock.now
        download?.abandon()
        download = nil
        stage = nil
        next = nil
        let layers = "layers \(a.layerStart)..<\(a.layerEnd)"
        logger[metadataKey: "stage"] = "\(a.stageIndex)"
        if let modelFile {
            log("assigned \(layers) of \(a.layerCount), from \(modelFile.path)")
            try verify(modelFile, against: a, what: "worker \(name)'s copy of the model (\(modelFile.path))")
            try load(modelFile, assign: a, started: started)
            return
        }
        let cached = cachePath(a)
        if let file = try? GGUFFile(path: cached), let id = StageFile.identity(of: file),
           id.modelSHA256 == ModelDigests.hex(a.model.sha256), id.layers == Int(a.layerStart) ..< Int(a.layerEnd) {
            do {
                try verify(file, against: a, what: "the cached \(cached)")
                log("assigned \(layers) of \(a.layerCount), from the cached \(cached)")
                try load(file, assign: a, started: started)
                return
            } catch {
                log("\(error.message); streaming the stage again")
                try? FileManager.default.removeItem(atPath: cached)
            }
        }
        guard a.stageFileBytes > 0 else {
            log("assigned \(layers) of \(a.layerCount); asking for the weights")
            sendCoordinator(.loadReport(LoadReport(status: .needWeights)))
            return
        }
        let limit = memoryLimit
        if limit > 0, a.stageFileBytes > limit {
            throw WireErrorMessage(code: .outOfMemory, message:
                "\(layers) take \(a.stageFileBytes >> 20) MiB; worker \(name) allows \(limit >> 20) MiB")
        }
        do { download = try StageDownload(assign: a, destination: cached, log: { [weak self] in self?.log($0) }) } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) cannot cache the stage file: \(error)")
        }
        protocolState.receiving()
        log("receiving \(a.stageFileBytes) bytes of \(layers) into \(cached)")
        sendCoordinator(.loadReport(LoadReport(status: .loading)))
    }

    /// Checks the stage's tensors in `file` against the assignment's digests: the tensors of its
    /// layers (hashed once per file, then cached by path, size, modification time and inode),
    /// and no other part of the file. A difference is an error naming the tensor.
    private func verify(_ file: GGUFFile, against a: Assign, what: String) throws(WireErrorMessage) {
        let layers = Int(a.layerStart) ..< Int(a.layerEnd)
        let expected = Dictionary(a.tensorDigests.map { ($0.name, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        let names: [String]
        do { names = try StageFile.tensorNames(in: file, layers: layers) } catch {
            throw WireErrorMessage(code: .modelMismatch, message: "\(what) does not hold layers \(layers): \(error)")
        }
        if let missing = names.first(where: { expected[$0] == nil }) {
            throw WireErrorMessage(code: .modelMismatch, message: "the assignment carries no digest for \(missing) of layers \(layers)")
        }
        let started = ContinuousClock.now
        let found: [String: String]
        do { found = try ModelDigests.ofTensors(names, in: file, cache: digests) } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) cannot check \(what): \(error)")
        }
        for name in names where found[name] != ModelDigests.hex(expected[name]!) {
            throw WireErrorMessage(code: .modelMismatch, message:
                "\(what) differs from the coordinator's \(a.model.name) in tensor \(name): sha256 " +
                "\(found[name]?.prefix(16) ?? "?")… here, \(ModelDigests.hex(expected[name]!).prefix(16))… at the coordinator")
        }
        let seconds = (ContinuousClock.now - started).totalSeconds
        if seconds > 0.5 { log(String(format: "checked the %d tensors of layers \(layers) in %.1f s", names.count, seconds)) }
    }

    /// Checks the assignment fits in memory, loads the layers from the (mapped) file and connects
    /// to the next stage.
    private func load(_ file: GGUFFile, assign a: Assign, started: ContinuousClock.Instant) throws(WireErrorMessage) {
        let layers = Int(a.layerStart) ..< Int(a.layerEnd)
        let path = file.path
        do {
            let config = try LlamaConfig(gguf: file)
            guard config.nLayers == Int(a.layerCount), a.layerEnd <= a.layerCount else {
                throw WireErrorMessage(code: .modelMismatch, message: "the model has \(config.nLayers) layers; the assignment says \(a.layerCount)")
            }
            let weightBytes = try StageFile.weightBytes(in: file, layers: layers)
            let budget = try Stage.kvBudget(config: config, layers: layers.count, assign: a, weightBytes: weightBytes,
                                            memoryLimit: memoryLimit, limitSource: settings.maxMemory > 0 ? "--max-memory" : "its memory")
            let stage = try Stage(file: file, assign: a, threads: settings.threads, precision: settings.precision,
                                  sharedCores: settings.sharedCores, kvPages: budget.pages)
            if !a.nextEndpoint.isEmpty {
                let socket = try ZMQSocket(context, type: .dealer)
                try socket.configureAsPeerLink(maxMessageBytes: Wire.maxFrameBytes)
                // The same peer (the one that said hello) to the next stage after a reconnect.
                try socket.setRandomRoutingID()
                try socket.connect(a.nextEndpoint)
                try socket.send(WireMessage.hello(Hello(role: .stage, peerID: name, appVersion: StrataVersion.string)).encoded())
                next = socket
            }
            self.stage = stage
            protocolState.loaded()
            let millis = UInt32(clamping: (ContinuousClock.now - started).milliseconds)
            let kvBytes = budget.pages * budget.shape.bytes
            log("stage \(a.stageIndex) of \(a.stageCount) ready: layers \(layers), \(weightBytes >> 20) MiB of weights, " +
                "KV cache up to \(kvBytes >> 20) MiB (\(budget.pages) pages of \(budget.shape.rows) positions), \(millis) ms")
            sendCoordinator(.loadReport(LoadReport(status: .ready, weightBytes: UInt64(weightBytes), kvCacheBytes: UInt64(kvBytes),
                                                   residentBytes: SystemInfo.residentBytes(), loadMilliseconds: millis,
                                                   kvPages: UInt32(clamping: budget.pages), kvPageRows: UInt32(budget.shape.rows))))
        } catch let error as WireErrorMessage {
            throw error
        } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) could not load layers \(layers) from \(path): \(error)")
        }
    }

    // MARK: Activations

    private func runForwards(_ messages: [Activations]) {
        guard let stage else {
            for m in messages {
                sendCoordinator(.error(.init(code: .notAssigned, requestID: m.requestID, message: "worker \(name) has no stage assigned")))
            }
            return
        }
        let results = stage.run(messages)
        // The batch has moved on; shared cores belong to the other stages until the next one.
        if stage.parksBetweenBatches { stage.engine.pool.park() }
        for result in results {
            switch result {
            case let .success(out):
                if let next {
                    do {
                        guard try next.send(WireMessage.forward(out).encoded(), dontWait: true) else {
                            sendCoordinator(.error(.init(code: .internal, requestID: out.requestID,
                                message: "worker \(name) cannot reach the next stage at \(stage.assign.nextEndpoint)")))
                            continue
                        }
                    } catch {
                        sendCoordinator(.error(.init(code: .internal, requestID: out.requestID,
                            message: "worker \(name): sending to the next stage: \(error)")))
                    }
                } else {
                    sendCoordinator(.result(out))
                }
            case let .failure(error):
                sendCoordinator(.error(error))
            }
        }
    }

    /// The next stage answers only with errors (for instance when it was restarted and no
    /// longer knows this stage): pass them on to the coordinator.
    private func drainNext() throws {
        while let next, let frames = try next.receive(dontWait: true) {
            guard let frame = frames.last else { continue }
            if case let .error(e)? = try? WireMessage.decode(frame) {
                sendCoordinator(.error(e))
            }
        }
    }
}
