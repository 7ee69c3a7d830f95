import Foundation
import Logging
import StrataIdentity
import StrataModel
import StrataWire
import Synchronization
import ZeroMQ

/// The coordinator: owns the tokenizer, the embedding, the final norm, the output head and
/// sampling; cuts the model's layers into stages on its workers; and schedules every request
/// through the pipeline, many sequences in flight at once.
///
/// `start` connects to the workers, hands out the stages and returns once every stage is
/// loaded. `submit` and `generate` may then be called from any number of tasks at once.
public final class Cluster: @unchecked Sendable {
    public let settings: ClusterSettings
    public let tokenizer: Tokenizer
    public let config: LlamaConfig
    public let model: ModelIdentity
    /// Tokens per sequence.
    public let contextLength: Int

    let context: ZMQContext
    /// The workers given at start (`--workers`, `--standby`); the driver adds those that join.
    let links: [WorkerLink]
    /// Where workers announce themselves (`listen`), and with CurveZMQ, who may.
    private var door: ZMQSocket?
    private var doorGuard: ZAPHandler?
    let head: LlamaEngine
    let file: GGUFFile
    /// SHA-256 of every tensor of the model (hex), for the stages to check what they load.
    let tensorDigests: [String: String]
    /// Cuts the model into stages, at start and whenever a worker is lost or joins.
    private(set) var planner: StagePlanner!
    let logger: Logger
    /// True once loading is to stop (checked from the setup thread): setup ends with `.shutDown`.
    private let isStopped: @Sendable () -> Bool
    /// Runs the scheduler once every stage is loaded.
    private(set) var driver: SchedulerDriver!
    private let closed = Mutex(false)

    /// Connects to the workers, hands out the stages and returns once every stage is loaded.
    /// Loading may take minutes, so it runs on a thread of its own; cancelling the task stops
    /// it within a moment, with `.shutDown`.
    public static func start(settings: ClusterSettings, logger: Logger = Logger(label: "strata.coordinator")) async throws(ClusterError) -> Cluster {
        let stop = StopFlag()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Result<Cluster, ClusterError>, Never>) in
                let thread = Thread {
                    done.resume(returning: Result { () throws(ClusterError) in
                        try Cluster(settings: settings, logger: logger, isStopped: { stop.isSet })
                    })
                }
                thread.name = "strata-cluster-setup"
                thread.stackSize = 4 << 20
                thread.start()
            }
        } onCancel: {
            stop.set()
        }
        return try result.get()
    }

    /// Connects, plans and loads, blocking the calling thread; see `start`.
    private init(settings: ClusterSettings, logger: Logger,
                 isStopped: @escaping @Sendable () -> Bool) throws(ClusterError) {
        guard !settings.workers.isEmpty || settings.listen != nil else { throw .noWorkers }
        self.settings = settings
        self.logger = logger
        self.isStopped = isStopped
        do {
            file = try GGUFFile(path: settings.model)
            config = try LlamaConfig(gguf: file)
            tokenizer = try Tokenizer(gguf: file)
            let file = file
            var progress = ByteProgress("hashing \(settings.model) (once; the digests are cached)", total: file.fileSize) { logger.info("\($0)") }
            let digests = try ModelDigests.ofModel(file, cache: settings.digestCache.map(DigestCache.init), progress: { done, _ in
                progress.update(done)
                return !isStopped()
            })
            progress.finish(file.fileSize)
            model = ModelIdentity(sha256: ModelDigests.bytes(hex: digests.sha256 ?? "") ?? [], byteCount: UInt64(file.fileSize),
                                  name: URL(fileURLWithPath: settings.model).lastPathComponent)
            tensorDigests = digests.tensors
            let weights = try LlamaWeights(gguf: file, layers: 0 ..< 0, embedding: true, head: true, precision: settings.precision)
            head = LlamaEngine(weights: weights, threads: settings.threads,
                               idleSpin: settings.sharedCores ? .microseconds(200) : .milliseconds(5))
        } catch DigestError.stopped {
            throw .shutDown
        } catch {
            throw .model("cannot load \(settings.model): \(error)")
        }
        contextLength = min(settings.contextLength, config.contextLength)
        do {
            let context = try ZMQContext()
            self.context = context
            let given = settings.workers.map { ($0, false) } + settings.standby.map { ($0, true) }
            if settings.security.keys != nil, let unkeyed = given.first(where: { settings.workerKeys[$0.0] == nil }) {
                throw ClusterError.noWorkerKey(endpoint: unkeyed.0)
            }
            links = try given.enumerated().map { i, w throws(ZMQError) in
                try WorkerLink(context: context, endpoint: w.0, index: i, standby: w.1, security: settings.security,
                               publicKey: settings.workerKeys[w.0])
            }
        } catch let error as ClusterError {
            throw error
        } catch {
            throw .model("cannot open sockets: \(error)")
        }
        if let keys = settings.security.keys {
            logger.info("links are encrypted (CurveZMQ); this coordinator's key is \(keys.publicText)")
        } else {
            logger.warning("links are not encrypted (--insecure): anyone on the network can read the activations, and take the workers over")
        }
        do {
            door = try settings.listen.map { address throws(ZMQError) in
                // The handler is there before the door opens: libzmq lets everyone in without one.
                if settings.security.keys != nil {
                    let zap = try ZAPHandler(context: context) { address, key in
                        logger.warning("refused a worker's connection from \(address): its key \(ZMQ.z85Encode(key) ?? "?") is not one this coordinator was given")
                    }
                    zap.setTrusted(settings.trustedWorkerKeys, as: "worker")
                    doorGuard = zap
                }
                let socket = try ZMQSocket(context, type: .router)
                try socket.configureAsPeerLink(maxMessageBytes: 64 << 10)
                try socket.secureAsServer(settings.security)
                try socket.bind(address)
                return socket
            }
            listenEndpoint = try door?.lastEndpoint()
        } catch {
            abandon()
            throw .model("cannot listen for workers at \(settings.listen ?? ""): \(error)")
        }
        do {
            planner = try StagePlanner(settings: settings, file: file, config: config, model: model,
                                       tensorDigests: tensorDigests, contextLength: contextLength)
            // Workers given at start are waited for; standbys and workers that join are taken
            // when they answer.
            let workers = links.filter { !$0.standby }
            if !workers.isEmpty {
                try handshake()
                try load(try planner.ranges(for: workers, strategy: settings.partition), on: workers)
            }
        } catch {
            abandon()
            throw error
        }
        do {
            driver = try SchedulerDriver(links: links, door: door, planner: planner, head: head, config: config, tokenizer: tokenizer,
                                         context: context, logger: logger)
        } catch {
            abandon()
            throw .model("cannot open the scheduler's sockets: \(error)")
        }
    }

    /// The stages as last reported.
    public var stages: [StageInfo] { driver.stages.withLock { $0 } }

    /// Where workers announce themselves (`listen`, its port resolved), if anywhere.
    public private(set) var listenEndpoint: String?

    /// The chat template the model file carries (Jinja source), if any.
    public var chatTemplateSource: String? { try? file.optionalString("tokenizer.chat_template") }

    /// Why the cluster stopped serving for good, or nil.
    public var failure: ClusterError? { driver.failure }

    /// Whether the cluster serves now, and if not, why: a worker was lost and a new plan is
    /// loading, or no plan fits the workers left.
    public var health: ClusterHealth { driver.health }

    /// Times the pipeline was rebuilt (a worker lost or joined).
    public var recoveries: Int { driver.recoveries }
    /// Of those, the ones that kept the stages' KV caches: a lost stage's layers went to a
    /// neighbour, which rebuilt only theirs.
    public var keptRecoveries: Int { driver.keptRecoveries }

    // MARK: Setup

    /// Waits on every link until `done(link)` or a deadline, handing each message to `handle`.
    /// `tick` runs before every wait, for work that goes on meanwhile (streaming stage files).
    private func waitFor(_ what: String, timeout: Duration, done: (WorkerLink) -> Bool,
                         tick: () throws(ClusterError) -> Void = {},
                         handle: (WorkerLink, WireMessage) throws(ClusterError) -> Void,
                         onTimeout: (WorkerLink) -> ClusterError) throws(ClusterError) {
        let deadline = ContinuousClock.now + timeout
        while let waiting = links.first(where: { !done($0) }) {
            if isStopped() { throw .shutDown }
            try tick()
            let left = deadline - .now
            guard left > .zero else { throw onTimeout(waiting) }
            do {
                let ready = try ZMQ.poll(links.map { ($0.socket, .readable) }, timeoutMilliseconds: min(left.milliseconds, 100))
                for (link, events) in zip(links, ready) where events.contains(.readable) {
                    while let message = try receive(link) { try handle(link, message) }
                }
            } catch let error as ClusterError {
                throw error
            } catch {
                throw .model("\(what): \(error)")
            }
        }
    }

    private func receive(_ link: WorkerLink) throws(ClusterError) -> WireMessage? {
        do { return try link.receive() } catch let error as WireError {
            if case let .unsupportedVersion(v) = error {
                throw .protocolMismatch(endpoint: link.endpoint, message: "it sent protocol version \(v); this coordinator speaks \(Wire.protocolVersion)")
            }
            throw .refused(endpoint: link.endpoint, message: "sent an undecodable frame: \(error)")
        } catch {
            throw .refused(endpoint: link.endpoint, message: "\(error)")
        }
    }

    private func handshake() throws(ClusterError) {
        let me = Hello.coordinator(settings.security)
        for link in links {
            do { try link.send(.hello(me)) } catch { throw .unreachable(endpoint: link.endpoint, seconds: 0) }
        }
        try waitFor("handshake", timeout: settings.connectTimeout, done: { $0.hello != nil || $0.standby }, tick: { () throws(ClusterError) in
            // An encrypted handshake that fails fails again on every retry: say why now.
            for link in links where link.hello == nil && !link.standby {
                while let (event, value, _) = try? link.monitor.next() {
                    guard let failure = WorkerLink.handshakeFailure(event, value: value) else { continue }
                    link.handshakeFailures += 1
                    if failure.certain || link.handshakeFailures >= 3 { throw .handshakeFailed(endpoint: link.endpoint, why: failure.why) }
                }
            }
        }, handle: { link, message throws(ClusterError) in
            switch message {
            case let .hello(h) where h.role == .worker:
                link.hello = h
                logger.info("connected: \(h.peerID), \(h.memoryBytes >> 20) MiB, \(h.threads) threads, \(h.cpuFeatures.joined(separator: " "))",
                            metadata: ["worker": "\(link.endpoint)"])
            case let .error(e): throw link.refusal(e)
            default: break
            }
        }, onTimeout: { .unreachable(endpoint: $0.endpoint, seconds: Int(settings.connectTimeout.components.seconds)) })
    }

    /// Hands out the first plan's stages and waits until every one is loaded. The workers
    /// answer heartbeats meanwhile: one that stops answering fails the start at once (not at
    /// the load timeout), and none is taken for lost when the scheduler starts, however long
    /// ago it finished loading.
    private func load(_ ranges: [Range<Int>], on workers: [WorkerLink]) throws(ClusterError) {
        let loader = try StageLoader(planner: planner, pipeline: workers, ranges: ranges, plan: 1, logger: logger)
        // (Silence counts from now: a worker that answered the handshake first waited for the others.)
        for link in workers { link.lastHeard = .now }
        var nextHeartbeat = ContinuousClock.now
        try waitFor("loading", timeout: settings.loadTimeout, done: { $0.standby || $0.report?.status == .ready },
                    tick: { () throws(ClusterError) in
                        try loader.pump()
                        guard ContinuousClock.now >= nextHeartbeat else { return }
                        nextHeartbeat = .now + settings.heartbeatInterval
                        try heartbeat(workers)
                    },
                    handle: { link, message throws(ClusterError) in try loader.handle(link, message) },
                    onTimeout: { .loadTimeout(endpoint: $0.endpoint, seconds: Int(settings.loadTimeout.components.seconds)) })
    }

    /// Sends each worker a heartbeat; one silent for `workerTimeout` is an error.
    private func heartbeat(_ workers: [WorkerLink]) throws(ClusterError) {
        for link in workers {
            let silent = ContinuousClock.now - link.lastHeard
            if silent > settings.workerTimeout {
                throw .workerLost(endpoint: link.endpoint, stage: link.stage, layers: link.layers, reason:
                    "no answer for \(String(format: "%.1f", silent.totalSeconds)) s while loading (the process stopped, or the network between us is down)")
            }
            try? link.send(.heartbeat(Heartbeat(nonce: UInt64(DispatchTime.now().uptimeNanoseconds))))
        }
    }

    // MARK: Shutdown

    /// Ends every request with `.shutDown`, stops the scheduler and, with `stopWorkers`, tells
    /// every worker to exit. Later calls do nothing.
    public func shutdown(stopWorkers: Bool = false) {
        guard closed.withLock({ c in defer { c = true }; return !c }) else { return }
        driver.stop()
        closeLinks(stopWorkers: stopWorkers)
    }

    /// Setup failed: closes the links, so that `deinit` has nothing left to do.
    private func abandon() {
        closed.withLock { $0 = true }
        closeLinks(stopWorkers: false)
    }

    private func closeLinks(stopWorkers: Bool) {
        door?.close()
        doorGuard?.stop()
        for link in driver?.links ?? links {
            if stopWorkers { try? link.send(.shutdown) }
            link.monitor.close()
            link.socket.close()
        }
        // Every socket is closed: wait (up to their linger) until the last messages, the
        // workers' shutdown among them, have left, even if the process exits right after.
        context.terminate()
    }

    deinit { shutdown() }
}

extension StageInfo {
    init(_ link: WorkerLink) {
        self.init(endpoint: link.endpoint, workerID: link.hello?.peerID ?? link.endpoint, layers: link.layers,
                  memoryBytes: link.hello?.memoryBytes ?? 0, weightBytes: link.report?.weightBytes ?? 0,
                  kvCacheBytes: link.lastHeartbeat?.kvCacheBytes ?? 0, sequences: Int(link.lastHeartbeat?.sequences ?? 0),
                  residentBytes: link.lastHeartbeat?.residentBytes ?? link.report?.residentBytes ?? 0,
                  streamedWeights: link.streamed, kvPages: Int(link.report?.kvPages ?? 0), kvPageRows: Int(link.report?.kvPageRows ?? 0))
    }
}

extension Hello {
    /// The coordinator's hello, with its public key when links are encrypted.
    static func coordinator(_ security: LinkSecurity) -> Hello {
        Hello(role: .coordinator, peerID: ProcessInfo.processInfo.hostName, appVersion: StrataVersion.string,
              curvePublicKey: security.keys?.publicKey ?? [])
    }
}

/// Set once, from any thread, to stop work running on another.
private final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
