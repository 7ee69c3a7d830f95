import Foundation
import Logging
import StrataIdentity
import StrataModel
import StrataWire
import ZeroMQ

/// The worker process: listens on a ROUTER socket for the coordinator and the previous stage,
/// loads the layers it is assigned, runs every batch that arrives and passes the activations
/// straight on to the next stage (the last stage answers the coordinator).
///
/// Two threads: this one owns the sockets and answers every message as it comes, heartbeats
/// included; the `StageThread` loads stages and runs batches, in order.
public final class WorkerServer: @unchecked Sendable {
    public let settings: WorkerSettings
    private let context: ZMQContext
    private let router: ZMQSocket
    /// Woken by the stage thread when a job produced something, and by a stage file's writer.
    private let wakeReceiver: ZMQSocket
    /// The inproc endpoint `wakeReceiver` binds.
    private let wake: String
    /// The endpoint actually bound (a `*` port resolved).
    public let endpoint: String

    /// With CurveZMQ: who may connect (the coordinators' keys, and the previous stage's).
    private let zap: ZAPHandler?
    private static let coordinatorRole = "coordinator", stageRole = "stage"
    /// The local copy of the model (checked at start), if the worker has one.
    private let modelFile: GGUFFile?
    private let stageThread: StageThread
    /// Who may do what, and where the stage is.
    private var protocolState = WorkerStateMachine()
    /// The last assignment (loading or serving).
    private var assignment: Assign?
    /// Where each plan's output goes: the socket to its next stage, or none for the last stage
    /// (to the coordinator). The last plan's, and until its first batch, the one before.
    private var routes: [UInt32: (assign: Assign, next: ZMQSocket?)] = [:]
    private var download: StageDownload?
    private var running = true
    /// With `join`: the socket to the coordinator's door, and when a coordinator last spoke to
    /// this worker (a hello or a heartbeat) and when it was last announced.
    private let announcer: ZMQSocket?
    private var coordinatorHeard: ContinuousClock.Instant?
    private var announced: ContinuousClock.Instant?

    public init(settings: WorkerSettings) throws {
        self.settings = settings
        // Check the file now: a worker with a broken model should fail at start, not at
        // assignment. Its bytes are checked at assignment, and only those of the stage's layers.
        modelFile = try settings.model.map { path in try GGUFFile(path: path) }
        context = try ZMQContext()
        var logger = Logger(label: "strata.worker")
        logger[metadataKey: "worker"] = "\(settings.name ?? settings.listen)"
        // The handler is there before the socket binds: libzmq lets everyone in without one.
        if settings.security.keys != nil {
            let refusals = logger
            let zap = try ZAPHandler(context: context) { address, key in
                refusals.warning("refused a connection from \(address): its key \(ZMQ.z85Encode(key) ?? "?") is not trusted here")
            }
            zap.setTrusted(settings.coordinatorKeys, as: Self.coordinatorRole)
            self.zap = zap
        } else {
            zap = nil
        }
        router = try ZMQSocket(context, type: .router)
        try router.configureAsPeerLink(maxMessageBytes: Wire.maxFrameBytes)
        try router.setRouterMandatory(true)
        try router.setRouterHandover(true)
        try router.secureAsServer(settings.security)
        try router.bind(settings.listen)
        endpoint = try router.lastEndpoint()
        let name = settings.name ?? endpoint
        logger[metadataKey: "worker"] = "\(name)"
        self.logger = logger
        let wake = "inproc://strata-stage-\(UUID().uuidString)"
        self.wake = wake
        wakeReceiver = try ZMQSocket(context, type: .pull)
        try wakeReceiver.bind(wake)
        let context = context
        announcer = try settings.join.map { door throws(ZMQError) in
            let socket = try ZMQSocket(context, type: .dealer)
            try socket.configureAsPeerLink(maxMessageBytes: 64 << 10)
            try socket.setLinger(milliseconds: 0)
            try socket.secureAsClient(settings.security, serverKey: settings.coordinatorKeys.first)
            try socket.connect(door)
            return socket
        }
        let memoryLimit = settings.maxMemory > 0 ? settings.maxMemory : SystemInfo.memoryLimit()
        stageThread = try StageThread(
            settings: settings, memoryLimit: memoryLimit,
            digests: DigestCache(directory: (settings.cacheDirectory as NSString).appendingPathComponent("digests")),
            name: name, logger: logger, context: context, wake: wake)
    }

    private var name: String { settings.name ?? endpoint }

    /// Logs with the worker's name, and once assigned, its stage.
    private var logger: Logger

    private func log(_ message: String, _ level: Logger.Level = .info) {
        logger.log(level: level, "\(message)")
    }

    /// Serves until a coordinator sends `shutdown` or `stop()` is called.
    public func run() throws {
        defer {
            download?.abandon()
            stageThread.close()
            wakeReceiver.close()
            announcer?.close()
            zap?.stop()
        }
        let security = settings.security.keys.map { "CurveZMQ, key \($0.publicText)" } ?? "links in the clear (--insecure)"
        log("listening" + (settings.model.map { ", model \($0)" } ?? ", no local model") + "; \(security)")
        if settings.security.keys == nil {
            log("links are not encrypted and any peer that reaches this port may take this worker over", .warning)
        }
        while running {
            announce()
            let nexts = routes.values.compactMap(\.next)
            guard let ready = try poll([(router, .readable), (wakeReceiver, .readable)] + nexts.map { ($0, .readable) }) else { return }
            if ready[1].contains(.readable) {
                while (try? wakeReceiver.receive(dontWait: true)) ?? nil != nil {}
                handOn(stageThread.takeOutcomes())
                followDownload()
            }
            for (next, events) in zip(nexts, ready.dropFirst(2)) where events.contains(.readable) { try drain(next) }
            if ready[0].contains(.readable) { try serveWaiting() }
        }
    }

    /// With `join`: tells the coordinator where this worker listens, every 2 s while no
    /// coordinator has spoken to it for 3 s.
    private func announce() {
        guard let announcer, let door = settings.join else { return }
        let now = ContinuousClock.now
        if let heard = coordinatorHeard, now - heard < .seconds(3) { return }
        if let last = announced, now - last < .seconds(2) { return }
        announced = now
        var me = hello()
        me.endpoint = settings.advertise ?? Self.advertised(endpoint)
        if (try? announcer.send(WireMessage.hello(me).encoded(), dontWait: true)) == true {
            log("announced \(me.endpoint) to the coordinator at \(door)", .debug)
        }
    }

    /// The bound endpoint as another host reaches it: a wildcard address becomes this host's name.
    static func advertised(_ endpoint: String) -> String {
        for wildcard in ["tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"] where endpoint.hasPrefix(wildcard) {
            return "tcp://\(ProcessInfo.processInfo.hostName):" + endpoint.dropFirst(wildcard.count)
        }
        return endpoint
    }

    /// Polls; nil once the context is shut down.
    private func poll(_ items: [(ZMQSocket, ZMQPollEvents)]) throws -> [ZMQPollEvents]? {
        do {
            return try ZMQ.poll(items, timeoutMilliseconds: settings.join == nil ? 1000 : 500)
        } catch {
            if error.isTerminated { return nil }
            throw error
        }
    }

    /// Takes every message waiting, so that activations that arrived together run as one batch.
    private func serveWaiting() throws {
        var forwards: [Activations] = []
        while running, let (frames, key) = try receive(dontWait: true) {
            for action in protocolState.received(frames, trust: trust(key)) {
                if case let .run(a) = action { forwards.append(a) } else {
                    if !forwards.isEmpty { stageThread.submit(.run(forwards)); forwards = [] }
                    perform(action)
                }
            }
        }
        if !forwards.isEmpty { stageThread.submit(.run(forwards)) }
    }

    /// Makes `run()` return (from any thread).
    public func stop() {
        context.shutdown()
    }

    /// The next message waiting, and the CurveZMQ key (Z85) its sender connected with.
    private func receive(dontWait: Bool) throws -> ([[UInt8]], String?)? {
        do {
            return try router.receiveAuthenticated(dontWait: dontWait).map { ($0.frames, $0.userID) }
        } catch {
            if error.isTerminated { running = false; return nil }
            throw error
        }
    }

    /// What a sender is, by the key it connected with: with CurveZMQ, the role its key is
    /// trusted for now (a previous stage of a plan retired since is no longer trusted).
    private func trust(_ key: String?) -> WorkerStateMachine.Trust {
        guard let zap else { return .unauthenticated }
        switch key.flatMap(ZMQ.z85Decode).flatMap(zap.name(of:)) {
        case Self.coordinatorRole: return .trusted(.coordinator)
        case Self.stageRole: return .trusted(.stage)
        default: return .untrusted
        }
    }

    /// With CurveZMQ, the previous stages that may connect: those of the plans this worker
    /// serves or loads.
    private func trustPreviousStages() {
        let keys = (routes.values.map(\.assign) + (assignment.map { [$0] } ?? [])).map(\.previousCurvePublicKey).filter { !$0.isEmpty }
        zap?.setTrusted(keys, as: Self.stageRole)
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
        case let .greet(peer):
            coordinatorHeard = .now
            send(.hello(hello()), to: peer)
        case let .assign(a): assign(a)
        case let .storeChunk(chunk): store(chunk)
        case let .run(a): stageThread.submit(.run([a]))
        case let .release(r): stageThread.submit(.release(r))
        case let .answerHeartbeat(nonce, peer):
            coordinatorHeard = .now
            send(.heartbeat(Heartbeat(nonce: nonce, sequences: UInt32(clamping: stageThread.cachedSequences.load(ordering: .relaxed)),
                                      kvCacheBytes: UInt64(clamping: stageThread.cacheBytes.load(ordering: .relaxed)),
                                      residentBytes: SystemInfo.residentBytes())), to: peer)
        case let .retire(plan):
            for (p, route) in routes where p < plan {
                route.next?.close()
                routes[p] = nil
            }
            trustPreviousStages()
            stageThread.submit(.retire(before: plan))
        case .stop: running = false
        case let .log(message): log(message)
        }
    }

    private func hello() -> Hello {
        Hello(role: .worker, peerID: name, appVersion: StrataVersion.string, memoryBytes: memoryLimit,
              threads: UInt16(settings.threads), cpuFeatures: SystemInfo.cpuFeatures(),
              curvePublicKey: settings.security.keys?.publicKey ?? [])
    }

    /// `--max-memory`, else what the cgroup and the system allow.
    private var memoryLimit: UInt64 { settings.maxMemory > 0 ? settings.maxMemory : SystemInfo.memoryLimit() }

    private func cachePath(_ a: Assign) -> String {
        (settings.cacheDirectory as NSString).appendingPathComponent(
            "\(ModelDigests.hex(a.model.sha256))-\(a.layerStart)-\(a.layerEnd).gguf")
    }

    /// A new assignment: a stage file still arriving for an earlier one is dropped, and the
    /// loader loads the layers (beside the stage serving now) from the worker's copy of the
    /// model or its cache of streamed stages, or the coordinator is asked to stream them.
    private func assign(_ a: Assign) {
        download?.abandon()
        download = nil
        assignment = a
        trustPreviousStages()
        let layers = "layers \(a.layerStart)..<\(a.layerEnd)"
        logger[metadataKey: "stage"] = "\(a.stageIndex)"
        if let modelFile {
            log("assigned \(layers) of \(a.layerCount), from \(modelFile.path)")
            stageThread.submit(.load(modelFile, a, what: "worker \(name)'s copy of the model (\(modelFile.path))", cached: false))
            return
        }
        let cached = cachePath(a)
        if let file = try? GGUFFile(path: cached), let id = StageFile.identity(of: file),
           id.modelSHA256 == ModelDigests.hex(a.model.sha256), id.layers == Int(a.layerStart) ..< Int(a.layerEnd) {
            log("assigned \(layers) of \(a.layerCount), from the cached \(cached)")
            stageThread.submit(.load(file, a, what: "the cached \(cached)", cached: true))
            return
        }
        do throws(WireErrorMessage) { try stream(a) } catch { assignmentFailed(error) }
    }

    /// Asks the coordinator for the stage file (an assignment without its size), or starts
    /// receiving it (one with).
    private func stream(_ a: Assign) throws(WireErrorMessage) {
        let layers = "layers \(a.layerStart)..<\(a.layerEnd)"
        guard a.stageFileBytes > 0 else {
            log("assigned \(layers) of \(a.layerCount); asking for the weights")
            sendCoordinator(.loadReport(LoadReport(status: .needWeights, plan: a.plan)))
            return
        }
        let limit = memoryLimit
        if limit > 0, a.stageFileBytes > limit {
            throw WireErrorMessage(code: .outOfMemory, message:
                "\(layers) take \(a.stageFileBytes >> 20) MiB; worker \(name) allows \(limit >> 20) MiB")
        }
        let cached = cachePath(a)
        do {
            download = try StageDownload(assign: a, destination: cached, context: context, wake: wake, log: { [weak self] in self?.log($0) })
        } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) cannot cache the stage file: \(error)")
        }
        protocolState.receiving()
        log("receiving \(a.stageFileBytes) bytes of \(layers) into \(cached)")
        sendCoordinator(.loadReport(LoadReport(status: .loading, plan: a.plan)))
    }

    private func assignmentFailed(_ error: WireErrorMessage) {
        log("assignment failed: \(error.message)", .error)
        assignment = nil
        protocolState.assignmentFailed()
        sendCoordinator(.error(error))
    }

    /// A chunk of the streamed stage file, for its writer.
    private func store(_ chunk: WeightChunk) {
        guard let download else { return }
        do throws(WireErrorMessage) { try download.append(chunk) } catch { downloadFailed(download, error) }
    }

    /// What the stage file's writer did since the last wake: the bytes written are acknowledged
    /// (the coordinator's stream runs a window ahead of them), and the complete file is loaded.
    private func followDownload() {
        guard let download, let progress = download.take() else { return }
        if let failure = progress.failure { return downloadFailed(download, failure) }
        sendCoordinator(.loadReport(LoadReport(status: .loading, receivedBytes: progress.written, plan: download.assign.plan)))
        guard progress.complete else { return }
        self.download = nil
        let file: GGUFFile
        do { file = try GGUFFile(path: download.destination) } catch {
            return assignmentFailed(WireErrorMessage(code: .loadFailed, message: "worker \(name): the streamed stage file is not a valid GGUF: \(error)"))
        }
        stageThread.submit(.load(file, download.assign, what: "the streamed stage file", cached: false))
    }

    private func downloadFailed(_ download: StageDownload, _ error: WireErrorMessage) {
        download.abandon()
        self.download = nil
        assignmentFailed(error)
    }

    // MARK: What the stage thread produced

    private func handOn(_ outcomes: [StageThread.Outcome]) {
        for outcome in outcomes {
            switch outcome {
            case let .loaded(a, report, _):
                // An assignment that a later one replaced: the later one's load follows.
                guard a == assignment else { continue }
                do throws(ZMQError) { try route(a) } catch {
                    assignmentFailed(WireErrorMessage(code: .loadFailed, message: "worker \(name) cannot connect to the next stage at \(a.nextEndpoint): \(error)"))
                    continue
                }
                let held = protocolState.loaded()
                sendCoordinator(.loadReport(report))
                held.forEach(perform)
            case let .loadFailed(error):
                assignmentFailed(error)
            case let .streamInstead(a):
                guard a == assignment else { continue }
                do throws(WireErrorMessage) { try stream(a) } catch { assignmentFailed(error) }
            case let .output(out):
                forward(out)
            case let .passOn(release):
                passOn(release)
            case let .failed(error):
                sendCoordinator(.error(error))
            }
        }
    }

    /// Where the loaded assignment's output goes: a socket to its next stage (none for the last
    /// stage), replacing one of the same plan.
    private func route(_ a: Assign) throws(ZMQError) {
        routes[a.plan]?.next?.close()
        routes[a.plan] = nil
        guard !a.nextEndpoint.isEmpty else {
            routes[a.plan] = (a, nil)
            return
        }
        let socket = try ZMQSocket(context, type: .dealer)
        // The next stage answers only with errors.
        try socket.configureAsPeerLink(maxMessageBytes: 64 << 10)
        // The same peer (the one that said hello) to the next stage after a reconnect.
        try socket.setRandomRoutingID()
        try socket.secureAsClient(settings.security, serverKey: a.nextCurvePublicKey.isEmpty ? nil : a.nextCurvePublicKey)
        try socket.connect(a.nextEndpoint)
        _ = try socket.send(WireMessage.hello(Hello(role: .stage, peerID: name, appVersion: StrataVersion.string)).encoded())
        routes[a.plan] = (a, socket)
    }

    /// A batch's activations, on to its plan's next stage, or from the last stage to the
    /// coordinator. Those of a plan retired meanwhile are dropped.
    private func forward(_ out: Activations) {
        guard let route = routes[UInt32(truncatingIfNeeded: out.requestID >> 32)] else { return }
        guard let next = route.next else { return sendCoordinator(.result(out)) }
        do {
            guard try next.send(WireMessage.forward(out).encoded(), dontWait: true) else {
                return sendCoordinator(.error(.init(code: .internal, requestID: out.requestID,
                    message: "worker \(name) cannot reach the next stage at \(route.assign.nextEndpoint)")))
            }
        } catch {
            sendCoordinator(.error(.init(code: .internal, requestID: out.requestID, message: "worker \(name): sending to the next stage: \(error)")))
        }
    }

    /// A release, on to its plan's next stage after the batches sent before it (the last stage
    /// passes nothing on). A next stage that cannot be reached fails the plan's batches anyway.
    private func passOn(_ release: Release) {
        guard let next = routes[release.plan]?.next else { return }
        if (try? next.send(WireMessage.release(release).encoded(), dontWait: true)) != true {
            log("could not pass on the release of \(release.sequences.count) sequences to the next stage", .warning)
        }
    }

    /// A next stage answers only with errors. One that no longer knows this stage was
    /// restarted: it is greeted again (the coordinator, which hears of the restart on its own
    /// link, replays what it lost). Other errors go on to the coordinator.
    private func drain(_ next: ZMQSocket) throws {
        while let frames = try next.receive(dontWait: true) {
            guard let frame = frames.last, case let .error(e)? = try? WireMessage.decode(frame) else { continue }
            if e.code == .unknownPeer {
                _ = try? next.send(WireMessage.hello(Hello(role: .stage, peerID: name, appVersion: StrataVersion.string)).encoded(), dontWait: true)
            } else {
                sendCoordinator(.error(e))
            }
        }
    }
}
