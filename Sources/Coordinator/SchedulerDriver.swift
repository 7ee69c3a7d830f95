import Dispatch
import Foundation
import Logging
import Metrics
import StrataIdentity
import StrataModel
import StrataWire
import Synchronization
import ZeroMQ

/// Runs the `Scheduler` over the workers' sockets, on a thread of its own: it polls the links,
/// hands what comes back to the scheduler (after computing the logits with the head), sends the
/// batches and releases the scheduler asks for, and sends heartbeats. Callers submit and cancel
/// from any thread; the scheduler's state is behind one lock, and an inproc socket wakes the
/// thread when a caller changed something.
///
/// It also keeps the pipeline whole. A worker whose connection breaks, or that stays silent past
/// `workerTimeout`, is lost: the driver makes a new plan over the workers left (`StagePlanner`),
/// hands it out (`StageLoader`) and, once every stage is loaded, has the sequences that were
/// running go on. Where it can, the new plan keeps the stages' KV caches and only the layers
/// that moved are rebuilt (`keptPlan`, `keeping`); otherwise the scheduler replays them. A worker that comes back (it answers a hello again), or a new
/// one that announces itself (`--join`), makes a new plan that takes it in; a standby takes the
/// place of a lost worker. While no plan fits, requests fail naming what is missing, and the
/// driver keeps trying as workers come and go.
final class SchedulerDriver: @unchecked Sendable {
    /// Every worker known, in pipeline order (the driver's thread only, until it stops).
    private(set) var links: [WorkerLink]
    /// Where workers announce themselves (`--listen`).
    private let door: ZMQSocket?
    private let context: ZMQContext
    /// No plan fits the workers there are.
    private var isUnavailable = false
    /// The stages of the plan serving, in order (the driver's thread only).
    private var pipeline: [WorkerLink]
    private let planner: StagePlanner
    /// The number of the newest plan (the one loading, if one is), and of the one serving.
    private var plan: UInt32 = 1
    private var servingPlan: UInt32 = 1
    /// A new plan on its way, while its stages load.
    private var loader: StageLoader?
    /// With the plan on its way: the layers of a lost first stage, whose KV cache the new first
    /// stage rebuilds from the embeddings the driver sends it before any batch.
    private var rebuildFirst: Range<Int>?
    /// A plan that kept the caches was refused: the next one is cut afresh.
    private var keepingFailed = false
    /// When the pipeline went down, for the recovery's figures.
    private var downSince: ContinuousClock.Instant?
    private let head: LlamaEngine
    private let settings: ClusterSettings
    private let dim: Int
    private let logger: Logger
    private let wakeReceiver: ZMQSocket
    private let done = DispatchSemaphore(value: 0)

    private let shared: Mutex<Shared>
    /// Per-hop latency and compute time of every batch since the last reset (for benchmarks).
    let latency = Mutex(LatencyRecorder())
    /// Each stage's compute time per batch (by stage and worker), and the time each hop adds
    /// (swift-metrics).
    private var stageCompute: [String: Metrics.Timer] = [:]
    private let hopLatency = Metrics.Timer(label: "strata_hop_latency_seconds")
    /// The stages as last reported.
    let stages: Mutex<[StageInfo]>

    fileprivate struct Shared: ~Copyable {
        var scheduler: Scheduler
        var replies: [RequestID: AsyncThrowingStream<GenerationEvent, any Error>.Continuation] = [:]
        var nextRequest: RequestID = 1
        var stopping = false
        var waker: ZMQSocket?
        var health: ClusterHealth = .serving
        /// Pipelines rebuilt so far, and how many of them kept the stages' KV caches.
        var recoveries = 0
        var keptRecoveries = 0

        /// Wakes the driver's thread (at most one wake-up waits at a time; more are not needed).
        func wake() { _ = try? waker?.send([1], dontWait: true) }
    }

    /// Takes over the links of a cluster whose stages are loaded (plan 1), and starts the thread.
    init(links: [WorkerLink], door: ZMQSocket?, planner: StagePlanner, head: LlamaEngine, config: LlamaConfig, tokenizer: Tokenizer,
         context: ZMQContext, logger: Logger) throws(ZMQError) {
        self.links = links
        self.door = door
        self.context = context
        pipeline = links.filter { !$0.standby }
        for (i, link) in pipeline.enumerated() {
            link.servingLayers = link.layers
            link.logPoints = i + 1 < pipeline.count && planner.settings.activationType == .f32 ? [link.layers.upperBound] : []
        }
        self.planner = planner
        self.head = head
        settings = planner.settings
        self.logger = logger
        dim = config.dim
        let limits = Scheduler.Limits(
            contextLength: planner.contextLength, maxSequences: settings.maxSequences, maxWaiting: settings.maxWaiting,
            prefillChunk: settings.prefillChunk, batchRows: planner.batchRows, batchesInFlight: settings.microBatches > 0 ? settings.microBatches : max(pipeline.count, 1))
        let wake = "inproc://strata-scheduler-\(UUID().uuidString)"
        wakeReceiver = try ZMQSocket(context, type: .pull)
        try wakeReceiver.bind(wake)
        let waker = try ZMQSocket(context, type: .push)
        try waker.connect(wake)
        shared = Mutex(Shared(scheduler: Scheduler(limits: limits, stages: pipeline.map(\.stageCache), tokenizer: tokenizer, plan: plan),
                              waker: waker))
        stages = Mutex(pipeline.map(StageInfo.init))
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "strata-scheduler"
        thread.stackSize = 4 << 20
        thread.start()
    }

    // MARK: Callers' side (any thread)

    /// See `Cluster.submit`.
    func submit(promptIDs: [Int32], options: GenerationOptions) throws(ClusterError)
        -> (request: RequestID, events: AsyncThrowingStream<GenerationEvent, any Error>) {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let request = try shared.withLock { s throws(ClusterError) -> RequestID in
            let request = s.nextRequest
            try s.scheduler.submit(request, promptIDs: promptIDs, options: options)
            s.nextRequest += 1
            s.replies[request] = continuation
            s.wake()
            return request
        }
        // A task that stops listening (cancelled, or the stream dropped) stops the request.
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(request) }
        }
        return (request, stream)
    }

    /// Stops a request wherever it is; its caches are released at the next turn of the loop.
    func cancel(_ request: RequestID) {
        let told = shared.withLock { s in
            defer { s.wake() }
            return s.tell(s.scheduler.cancel(request))
        }
        told()
    }

    /// Running requests and requests waiting in line.
    var load: (running: Int, waiting: Int) {
        shared.withLock { ($0.scheduler.running, $0.scheduler.waitingCount) }
    }

    /// Why the cluster stopped serving for good, or nil.
    var failure: ClusterError? { shared.withLock { $0.scheduler.failure } }

    /// Whether the cluster serves now, and if not, why.
    var health: ClusterHealth { shared.withLock { $0.health } }

    /// Pipelines rebuilt since the start.
    var recoveries: Int { shared.withLock { $0.recoveries } }
    /// Of those, the ones that kept the stages' KV caches (a lost stage's layers went to a
    /// neighbour, and only they were rebuilt).
    var keptRecoveries: Int { shared.withLock { $0.keptRecoveries } }

    /// Ends every request with `.shutDown`, stops the thread and waits for it.
    func stop() {
        let first = shared.withLock { s -> Bool in
            defer { s.stopping = true; s.wake() }
            return !s.stopping
        }
        guard first else { return }
        done.wait()
        shared.withLock { s in
            s.waker?.close()
            s.waker = nil
        }
        wakeReceiver.close()
    }

    // MARK: The loop

    /// Batches sent and not back, with when they left (for the round-trip figures).
    private var sentAt: [UInt64: UInt64] = [:]
    private var results: [Activations] = []
    private var nextHeartbeat = ContinuousClock.now

    private func run() {
        if pipeline.isEmpty { unavailable(.noWorkersLeft(reason: "no worker has joined yet")) }
        while true {
            let timeout = max(0, (nextHeartbeat - .now).milliseconds)
            let ready: [ZMQPollEvents]
            // (The links polled this turn: one may join while they are handled.)
            let links = links
            do {
                ready = try ZMQ.poll([(wakeReceiver, .readable)] + (door.map { [($0, .readable)] } ?? [])
                                     + links.map { ($0.socket, .readable) } + links.map { ($0.monitor.socket, .readable) },
                                     timeoutMilliseconds: timeout)
            } catch {
                return failAll(.model("the scheduler cannot poll its sockets: \(error)"), permanently: true)
            }
            if ready[0].contains(.readable) { while (try? wakeReceiver.receive(dontWait: true)) ?? nil != nil {} }
            if shared.withLock({ $0.stopping }) { return failAll(.shutDown, permanently: false) }
            let linkEvents = ready.dropFirst(door == nil ? 1 : 2)
            if let door, ready[1].contains(.readable) { admit(door) }
            for (link, events) in zip(links, linkEvents.dropFirst(links.count)) where events.contains(.readable) {
                watch(link)
            }
            for (link, events) in zip(links, linkEvents) where events.contains(.readable) {
                if let failure = drain(link) { return failAll(failure, permanently: true) }
            }
            if let loader {
                do throws(ClusterError) {
                    try loader.pump()
                    if loader.isDone { finishPlan(loader) }
                } catch {
                    unavailable(error)
                }
            }
            sample()
            // Ended sequences go first: their pages may let waiting requests into this batch.
            release()
            sendBatch()
            // The head is done until results come back: free shared cores for the stages.
            if settings.sharedCores { head.pool.park() }
            if ContinuousClock.now >= nextHeartbeat { heartbeat() }
        }
    }

    /// Runs `body` on the scheduler under the lock, then tells callers what it delivered.
    private func schedule(_ body: (inout Scheduler) -> [Scheduler.Delivery]) {
        let told = shared.withLock { s in s.tell(body(&s.scheduler)) }
        told()
    }

    /// A link's connection events: a broken one loses its worker; a new one (the worker back,
    /// or another process on its address) is greeted.
    private func watch(_ link: WorkerLink) {
        while let (event, value, _) = try? link.monitor.next() {
            if event.contains(.disconnected), link.hello != nil {
                lost(link, "its connection broke (the process exited, or was killed)")
            }
            if event.contains(.handshakeSucceeded) {
                link.handshakeFailed = false
                if link.hello == nil { greet(link) }
            }
            // Said once until a handshake succeeds: libzmq tries again and again.
            if let failure = WorkerLink.handshakeFailure(event, value: value), !link.handshakeFailed {
                link.handshakeFailed = true
                logger.warning("the encrypted handshake failed: \(failure.why)", metadata: ["worker": "\(link.endpoint)"])
            }
        }
    }

    /// Says hello to a worker that is to answer with its own before it takes part again.
    private func greet(_ link: WorkerLink) {
        link.greeted = .now
        try? link.send(.hello(.coordinator(planner.settings.security)))
    }

    /// Takes every message waiting on a link; returns a failure that ends the cluster.
    private func drain(_ link: WorkerLink) -> ClusterError? {
        while true {
            let message: WireMessage?
            do { message = try link.receive() } catch let error as WireError {
                if case let .unsupportedVersion(v) = error {
                    return .protocolMismatch(endpoint: link.endpoint, message: "it sent protocol version \(v); this coordinator speaks \(Wire.protocolVersion)")
                }
                logger.warning("undecodable frame: \(error)", metadata: ["worker": "\(link.endpoint)"])
                continue
            } catch {
                return .workerLost(endpoint: link.endpoint, stage: link.stage, layers: link.layers, reason: "\(error)")
            }
            guard let message else { return nil }
            switch message {
            case let .result(a):
                if UInt32(truncatingIfNeeded: a.requestID >> 32) == servingPlan { results.append(a) }
            case let .heartbeat(h):
                link.lastHeartbeat = h
                // A worker taken for lost answers after all (it was paused): greet it again.
                if link.hello == nil, ContinuousClock.now - link.greeted > settings.workerTimeout { greet(link) }
            case let .hello(h) where h.role == .worker:
                guard link.hello == nil else { continue }
                link.hello = h
                link.refused = nil
                joined(link)
            case let .loadReport(r):
                if let loader, loader.has(link), r.plan == plan {
                    do throws(ClusterError) { try loader.handle(link, message) } catch { refused(link, error) }
                }
            case let .error(e):
                stageError(e, from: link)
            default:
                logger.warning("unexpected \(message.kind)", metadata: ["worker": "\(link.endpoint)"])
            }
        }
    }

    /// A worker's error: about a batch, its sequences fail with the stage's words; a worker
    /// that no longer knows this coordinator restarted; one that refused its stage is left out.
    private func stageError(_ e: WireErrorMessage, from link: WorkerLink) {
        let error = ClusterError.stageFailed(endpoint: link.endpoint, message: e.message)
        if e.code == .unknownPeer {
            // A new process on the worker's address: its stage is gone.
            if link.hello != nil { lost(link, "it restarted (it no longer knows this coordinator)") }
            if ContinuousClock.now - link.greeted > .seconds(1) { greet(link) }
        } else if sentAt.removeValue(forKey: e.requestID) != nil {
            schedule { $0.batchFailed(e.requestID, error) }
        } else if e.requestID == 0, let loader, loader.has(link), link.report?.status != .ready {
            refused(link, link.refusal(e))
        } else if e.requestID == 0 && [.malformed, .unknownKind, .unsupportedVersion].contains(e.code) {
            sentAt.removeAll()
            schedule { $0.everyBatchFailed(error) }
        } else {
            logger.warning("\(e.message)", metadata: ["stage": "\(link.stage)", "worker": "\(link.endpoint)"])
        }
    }

    // MARK: Workers lost and joined

    /// A worker of the plan is gone (or was taken for gone): a new plan without it. One lost
    /// while only a plan loading beside the serving one had it leaves the serving one alone.
    private func lost(_ link: WorkerLink, _ reason: String) {
        link.hello = nil
        link.greeted = .now
        // Whatever it held is gone (if it comes back, it starts afresh).
        let layers = link.servingLayers
        (link.servingLayers, link.logPoints) = (0 ..< 0, [])
        let serving = pipeline.contains { $0 === link }
        logger.warning("worker lost: \(reason)", metadata: ["stage": "\(link.stage)", "worker": "\(link.endpoint)"])
        guard serving || loader?.has(link) == true else { return }
        replan(because: "worker \(link.endpoint) (stage \(link.stage), layers \(link.layers.lowerBound)-\(link.layers.upperBound - 1)) was lost: \(reason)",
               live: !serving && isServing, lost: serving ? (link, layers) : nil)
    }

    /// The plan serving is whole (no stage lost, a plan fits).
    private var isServing: Bool { downSince == nil && !isUnavailable }

    /// A worker answered a hello: (back) in the cluster, it takes part in a new plan, unless it
    /// is a standby no lost worker waits for. Workers that refused their stage of an earlier
    /// plan get another chance.
    private func joined(_ link: WorkerLink) {
        link.lastHeard = .now
        for other in links { other.refused = nil }
        logger.notice("\(link.standby ? "standby" : "worker") joined: \(link.hello?.peerID ?? link.endpoint), \((link.hello?.memoryBytes ?? 0) >> 20) MiB",
                      metadata: ["worker": "\(link.endpoint)"])
        let current = loader?.pipeline ?? pipeline
        guard isUnavailable || members().map(ObjectIdentifier.init) != current.map(ObjectIdentifier.init) else { return }
        // While the pipeline serves, the new plan loads beside it.
        replan(because: "worker \(link.endpoint) joined", live: isServing)
    }

    /// The workers of the next plan, in order: every worker there is, and in the place of each
    /// one lost, a standby if one is there.
    private func members() -> [WorkerLink] {
        let usable = { (link: WorkerLink) in link.hello != nil && link.refused == nil }
        var spares = links.filter { $0.standby && usable($0) }
        var out: [WorkerLink] = []
        for link in links where !link.standby {
            if usable(link) { out.append(link) } else if !spares.isEmpty { out.append(spares.removeFirst()) }
        }
        return out
    }

    /// Takes the announcements waiting at the door (`strata worker --join`): a worker new here
    /// gets a link, one known and lost is greeted again.
    private func admit(_ door: ZMQSocket) {
        let security = planner.settings.security
        while let (frames, key) = try? door.receiveAuthenticated(dontWait: true) {
            guard frames.count == 2, let peer = frames.first else { continue }
            let hello: Hello
            do {
                guard case let .hello(h) = try WireMessage.decode(frames[1]), h.role == .worker, !h.endpoint.isEmpty else {
                    _ = try? door.send([peer, WireMessage.error(.init(code: .malformed, message: "only a worker's hello with its endpoint is taken here")).encoded()], dontWait: true)
                    continue
                }
                hello = h
            } catch {
                _ = try? door.send([peer, WireMessage.error(error.reply).encoded()], dontWait: true)
                continue
            }
            // With CurveZMQ the worker is the key it connected with (the door let it in), and
            // its endpoint is connected to with that key; the key it claims is not asked.
            let workerKey = key.flatMap(ZMQ.z85Decode)
            if security.keys != nil, workerKey == nil { continue }
            if let link = links.first(where: { $0.endpoint == hello.endpoint }) {
                if link.publicKey != workerKey {
                    logger.warning("a worker with another key announced itself at \(hello.endpoint), the address of a worker known here: ignored",
                                   metadata: ["worker": "\(hello.endpoint)"])
                } else if link.hello == nil && ContinuousClock.now - link.greeted > .seconds(1) {
                    greet(link)
                }
                continue
            }
            do {
                let link = try WorkerLink(context: context, endpoint: hello.endpoint, index: links.count, security: security,
                                          publicKey: workerKey)
                links.append(link)
                logger.notice("worker \(hello.peerID) announced itself at \(hello.endpoint)", metadata: ["worker": "\(hello.endpoint)"])
                greet(link)
            } catch {
                logger.warning("cannot connect to the worker that announced itself at \(hello.endpoint): \(error)")
            }
        }
    }

    /// A worker refused its stage of the plan loading: a new plan without it (beside the
    /// serving one, if that one is whole).
    private func refused(_ link: WorkerLink, _ error: ClusterError) {
        logger.error("\(error.description)", metadata: ["worker": "\(link.endpoint)"])
        // A stage that could not keep its caches is no reason to leave the worker out.
        if loader?.keeps.isEmpty == false { keepingFailed = true } else { link.refused = error }
        replan(because: error.description, live: isServing)
    }

    /// Hands out a new plan over the workers there are. Unless `live`, the pipeline stops at
    /// once: the scheduler forgets the batches in flight and will replay every running sequence
    /// on the new plan. `live` (a worker joined while all is well), the plan loads while the
    /// pipeline serves, and sequences switch over once it is loaded (`finishPlan`); a live plan
    /// that would change nothing, or does not fit, is dropped and the serving one goes on.
    ///
    /// A stage `lost` (its worker and layers) from a plan that was serving whole, with no plan
    /// loading beside it, is replaced by a plan that keeps the other stages' layers, where it
    /// can (`keptPlan`). Every other plan that stops the pipeline keeps what caches it can of
    /// the plan serving (`keeping`).
    private func replan(because reason: String, live: Bool = false, lost: (link: WorkerLink, layers: Range<Int>)? = nil) {
        let wasWhole = isServing && loader == nil
        loader = nil
        rebuildFirst = nil
        if live && members().map(ObjectIdentifier.init) == pipeline.map(ObjectIdentifier.init) { return }
        plan += 1
        if !live {
            if downSince == nil { downSince = .now }
            stopPipeline()
            shared.withLock { $0.health = .recovering(reason) }
        }
        isUnavailable = false
        if wasWhole, let lost, let kept = keptPlan(without: lost.link, layers: lost.layers) {
            do throws(ClusterError) {
                loader = try StageLoader(planner: planner, pipeline: kept.members, ranges: kept.ranges, plan: plan, keeps: kept.keeps, logger: logger)
                rebuildFirst = kept.rebuildFirst
                let layers = kept.ranges.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ", ")
                logger.notice("plan \(plan): \(kept.members.count) stages, layers \(layers); the other stages keep their caches (\(reason))")
                return
            } catch {
                logger.warning("cannot keep the caches (\(error.description)); cutting the model afresh")
            }
        }
        let members = members()
        guard !members.isEmpty else {
            return unavailable(.noWorkersLeft(reason: reason))
        }
        // An explicit partition is for the workers given; other plans are cut by memory.
        let given = links.filter { !$0.standby && $0.index < settings.workers.count }
        let strategy = members.map(ObjectIdentifier.init) == given.map(ObjectIdentifier.init) ? settings.partition : .memory
        do throws(ClusterError) {
            let ranges = try planner.ranges(for: members, strategy: strategy)
            let kept = live ? nil : keeping(members, ranges)
            loader = try StageLoader(planner: planner, pipeline: members, ranges: ranges, plan: plan, keeps: kept?.keeps ?? [:], logger: logger)
            rebuildFirst = kept?.rebuildFirst
            logger.notice("plan \(plan): \(members.count) stages, layers \(ranges.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ", ")) (\(reason))")
        } catch {
            guard live else { return unavailable(error) }
            loader = nil
            logger.warning("no new plan (\(reason)): \(error.description); the serving one goes on")
        }
    }

    /// A plan for the loss of `lost`, a stage of the plan serving, that keeps every other
    /// stage's layers and caches: a standby waiting takes the lost layers, or else the
    /// neighbour before (for the first stage, the one after) takes them on, if its memory
    /// holds them. Nil when neither works out (`keeping`), or another worker is gone too.
    private func keptPlan(without lost: WorkerLink, layers lostLayers: Range<Int>)
        -> (members: [WorkerLink], ranges: [Range<Int>], keeps: [ObjectIdentifier: KeptCaches], rebuildFirst: Range<Int>?)? {
        guard pipeline.count >= 2, let k = pipeline.firstIndex(where: { $0 === lost }) else { return nil }
        var members = members()
        var ranges: [Range<Int>]
        if members.count == pipeline.count {
            // A standby in the lost one's place.
            ranges = pipeline.map { $0 === lost ? lostLayers : $0.servingLayers }
        } else {
            members = pipeline.filter { $0 !== lost }
            ranges = members.map(\.servingLayers)
            let heir = max(k - 1, 0)
            ranges[heir] = min(ranges[heir].lowerBound, lostLayers.lowerBound) ..< max(ranges[heir].upperBound, lostLayers.upperBound)
        }
        guard members.allSatisfy({ $0.hello != nil }) else { return nil }
        do { _ = try planner.ranges(for: members, strategy: .explicit(ranges)) } catch {
            logger.info("the caches cannot be kept: \(error.description)")
            return nil
        }
        guard let kept = keeping(members, ranges) else { return nil }
        return (members, ranges, kept.keeps, kept.rebuildFirst)
    }

    /// What each stage of a plan of `members` with `ranges` keeps of the caches of the plan
    /// serving, which must be stopped (`stopPipeline`): the KV cache of the layers its worker
    /// held there, for the positions every stage has run, and its logs; the layers new to it are
    /// rebuilt from their input. That input is the log of the stage before the new layers (its
    /// own, or the previous stage's, which sends it on), or for layers from 0 the embeddings
    /// (`rebuildFirst`). Nil when a stage's new layers lie on both sides of those it keeps, or
    /// no stage logged their input, or activations are not f32 (then every sequence replays).
    private func keeping(_ members: [WorkerLink], _ ranges: [Range<Int>]) -> (keeps: [ObjectIdentifier: KeptCaches], rebuildFirst: Range<Int>?)? {
        guard settings.activationType == .f32, !keepingFailed else { return nil }
        // (A worker lost since has no layers of the plan serving.)
        let serving = Set(pipeline.filter { !$0.servingLayers.isEmpty }.map(ObjectIdentifier.init))
        let sequences = shared.withLock { $0.scheduler.kept() }.map { KeptCaches.Sequence(sequence: $0.sequence, length: UInt32($0.tokens.count)) }
        // Nothing to keep: a fresh plan is simpler.
        guard !sequences.isEmpty else { return nil }
        var keeps: [ObjectIdentifier: KeptCaches] = [:]
        var rebuildFirst: Range<Int>?
        for (i, (link, new)) in zip(members, ranges).enumerated() {
            let old = serving.contains(ObjectIdentifier(link)) ? link.servingLayers : 0 ..< 0
            let kept = old.clamped(to: new)
            let before = new.lowerBound ..< (kept.isEmpty ? new.upperBound : kept.lowerBound)
            let after = (kept.isEmpty ? new.upperBound : kept.upperBound) ..< new.upperBound
            guard before.isEmpty || after.isEmpty else { return nil }
            var keep = KeptCaches(fromPlan: servingPlan, sequences: sequences)
            if !before.isEmpty {
                // Fed by the embeddings, or by the previous stage's log, sent on.
                if before.lowerBound == 0 {
                    rebuildFirst = before
                } else {
                    let previous = members[i - 1]
                    guard serving.contains(ObjectIdentifier(previous)), previous.logPoints.contains(before.lowerBound) else { return nil }
                    keeps[ObjectIdentifier(previous)]!.sendOn = true
                }
                (keep.rebuildStart, keep.rebuildEnd) = (UInt32(before.lowerBound), UInt32(before.upperBound))
            } else if !after.isEmpty {
                // Fed by its own log where its old layers ended.
                guard link.logPoints.contains(after.lowerBound) else { return nil }
                (keep.rebuildStart, keep.rebuildEnd, keep.rebuildFromLog) = (UInt32(after.lowerBound), UInt32(after.upperBound), true)
            }
            keeps[ObjectIdentifier(link)] = keep
        }
        return (keeps, rebuildFirst)
    }

    /// Sends the new first stage the embeddings of every position its caches kept, to rebuild
    /// the KV cache of the layers it took over from the lost first stage (before any batch: the
    /// link keeps the order).
    private func sendRebuild(_ layers: Range<Int>, to link: WorkerLink) {
        let kept = shared.withLock { $0.scheduler.kept() }
        let tokens = Dictionary(kept.map { ($0.sequence, $0.tokens) }, uniquingKeysWith: { a, _ in a })
        // At most `batchRows` rows a message, as every forward (a long sequence spans several).
        for part in batchParts(kept.map { ($0.sequence, $0.tokens.count) }, rows: planner.batchRows) {
            do {
                let ids = part.flatMap { p in tokens[p.sequence]!.dropFirst(p.positions.lowerBound).prefix(p.positions.count) }
                let hidden = try head.embed(Array(ids))
                let message = Activations(requestID: UInt64(plan) << 32, lastRowsOnly: false, rebuild: true, type: .f32, dim: UInt32(dim),
                                          entries: part.map { .init(sequence: $0.sequence, position: UInt32($0.positions.lowerBound), tokenCount: UInt32($0.positions.count)) },
                                          payload: ActivationCodec.encode(hidden, as: .f32))
                try link.send(.forward(message))
            } catch {
                // Their next batch fails on the stage (their cache was dropped there), and so do they.
                logger.error("cannot send the rebuild of layers \(layers) for \(part.count) sequences: \(error)", metadata: ["worker": "\(link.endpoint)"])
            }
        }
    }

    /// No plan fits: every request fails with `error` until a worker joins.
    private func unavailable(_ error: ClusterError) {
        loader = nil
        isUnavailable = true
        logger.error("no plan fits the workers there are; requests fail until one joins: \(error.description)")
        let (told, release) = shared.withLock { s in
            let (deliveries, release) = s.scheduler.unavailable(error)
            s.health = .unavailable(error)
            return (s.tell(deliveries), release)
        }
        told()
        releaseOnEach(release, of: links.filter { $0.hello != nil })
    }

    /// The batches in flight are forgotten; every running sequence is to be replayed.
    private func stopPipeline() {
        sentAt.removeAll()
        results.removeAll()
        shared.withLock { $0.scheduler.pipelineLost() }
    }

    /// Every stage of the new plan is loaded: it serves, and the running sequences replay.
    private func finishPlan(_ loader: StageLoader) {
        self.loader = nil
        // A plan loaded live: the switch is now, between two steps.
        let live = downSince == nil
        if live { stopPipeline() }
        // Its stages take over the caches of the plan serving, under the next plan number, if
        // they can: the pause lasts as long as they take to rebuild the layers that moved. (The
        // cluster stays healthy meanwhile: this is a switch, not a failure.)
        if live, loader.keeps.isEmpty, let kept = keeping(loader.pipeline, loader.pipeline.map(\.layers)) {
            plan += 1
            downSince = .now
            let reason = "switching to plan \(plan), which keeps the caches"
            do throws(ClusterError) {
                self.loader = try StageLoader(planner: planner, pipeline: loader.pipeline, ranges: loader.pipeline.map(\.layers), plan: plan,
                                              keeps: kept.keeps, logger: logger)
                rebuildFirst = kept.rebuildFirst
                logger.info("plan \(plan - 1) is loaded: \(reason)")
            } catch {
                replan(because: "\(reason): \(error.description)")
            }
            return
        }
        let wasServing = Set(pipeline.map(ObjectIdentifier.init))
        pipeline = loader.pipeline
        servingPlan = plan
        let kept = !loader.keeps.isEmpty
        keepingFailed = false
        for link in links where !pipeline.contains(where: { $0 === link }) { (link.servingLayers, link.logPoints) = (0 ..< 0, []) }
        for (i, link) in pipeline.enumerated() {
            // The boundaries its stage logs (as `Stage` decides them).
            var points: Set<Int> = kept && wasServing.contains(ObjectIdentifier(link))
                ? link.logPoints.filter { link.layers.lowerBound < $0 && $0 < link.layers.upperBound } : []
            if i + 1 < pipeline.count { points.insert(link.layers.upperBound) }
            (link.servingLayers, link.logPoints) = (link.layers, settings.activationType == .f32 ? points : [])
        }
        if let layers = rebuildFirst { sendRebuild(layers, to: pipeline[0]) }
        rebuildFirst = nil
        let took = ContinuousClock.now - (downSince ?? loader.started)
        downSince = nil
        let (told, release) = shared.withLock { s in
            s.health = .serving
            s.recoveries += 1
            if kept { s.keptRecoveries += 1 }
            let (deliveries, release) = s.scheduler.resume(stages: pipeline.map(\.stageCache), plan: plan, kept: kept)
            return (s.tell(deliveries), release)
        }
        told()
        releaseThroughPipeline(release)
        stages.withLock { $0 = pipeline.map(StageInfo.init) }
        let how = live ? "loaded in \(took.milliseconds) ms while the last plan served" : "\(took.milliseconds) ms after the pipeline stopped"
        logger.notice("plan \(plan) serves: \(pipeline.count) stages, \(how)\(kept ? ", caches kept" : "")")
    }

    // MARK: Batches

    /// The batches back from the last stage: the logits of every row to sample, in one pass
    /// of the head, then each sequence samples its next token.
    private func sample() {
        guard !results.isEmpty else { return }
        defer { results.removeAll(keepingCapacity: true) }
        let now = DispatchTime.now().uptimeNanoseconds
        var batches: [(id: UInt64, sequences: [SequenceID])] = []
        var hidden: [Float] = []
        var rows: [Int] = []
        let wanted = shared.withLock { s in results.map { s.scheduler.toSample($0.requestID) } }
        for (message, sampled) in zip(results, wanted) {
            guard let sent = sentAt.removeValue(forKey: message.requestID) else { continue }
            record(roundTripNanos: now - sent, stageNanos: message.stageNanos)
            do {
                let values = try ActivationCodec.decode(message.payload, as: message.type, count: message.entries.count * dim)
                let row = hidden.count / dim
                hidden += values
                let index = Dictionary(message.entries.enumerated().map { ($1.sequence, $0) }, uniquingKeysWith: { a, _ in a })
                let found = sampled.filter { index[$0] != nil }
                rows += found.map { row + index[$0]! }
                batches.append((message.requestID, found))
            } catch {
                let error = ClusterError.stageFailed(endpoint: pipeline.last!.endpoint, message: "\(error)")
                schedule { $0.batchFailed(message.requestID, error) }
            }
        }
        var logits: [Float] = []
        if !rows.isEmpty {
            do { logits = try head.logits(hidden, rows: rows) } catch {
                for b in batches { schedule { $0.batchFailed(b.id, .generation(.inference(error))) } }
                return
            }
        }
        let vocab = rows.isEmpty ? 0 : logits.count / rows.count
        var row = 0
        for b in batches {
            let pairs = b.sequences.enumerated().map { i, id in (id, Array(logits[(row + i) * vocab ..< (row + i + 1) * vocab])) }
            row += b.sequences.count
            schedule { $0.returned(b.id, logits: pairs) }
        }
    }

    /// A batch's timings: each stage's compute time, and what each hop (stages + 1) added
    /// beyond computing: sending, receiving, encoding, decoding and queueing.
    private func record(roundTripNanos: UInt64, stageNanos: [UInt64]) {
        for (link, nanos) in zip(pipeline, stageNanos) {
            let key = "\(link.stage) \(link.endpoint)"
            let timer = stageCompute[key] ?? Metrics.Timer(label: "strata_stage_compute_seconds",
                                                           dimensions: [("stage", "\(link.stage)"), ("worker", link.endpoint)])
            stageCompute[key] = timer
            timer.recordNanoseconds(Int64(clamping: nanos))
        }
        let compute = stageNanos.reduce(0, +)
        let perHop = roundTripNanos > compute ? (roundTripNanos - compute) / UInt64(pipeline.count + 1) : 0
        hopLatency.recordNanoseconds(Int64(clamping: perHop))
        latency.withLock { $0.record(perHopNanos: perHop, computeNanos: compute) }
    }

    private func release() {
        releaseThroughPipeline(shared.withLock { $0.scheduler.releasable() })
    }

    /// Releases sequences on the serving pipeline's stages by way of the pipeline: the first
    /// stage passes the release on after the batches it sent before, so no stage meets a batch
    /// of a sequence admitted into the pages freed before it has freed them (sent to every stage
    /// at once, a release to stage 2 could arrive after stage 1's next batch).
    private func releaseThroughPipeline(_ ids: [SequenceID]) {
        guard let first = pipeline.first else { return }
        for part in ids.chunks(of: Wire.Limits.releaseSequences) {
            try? first.send(.release(Release(Array(part), plan: servingPlan, passOn: true)))
        }
    }

    /// Releases sequences on each of `links` directly (no pipeline to pass them along).
    private func releaseOnEach(_ ids: [SequenceID], of links: [WorkerLink]) {
        for part in ids.chunks(of: Wire.Limits.releaseSequences) {
            send(.release(Release(Array(part))), toAll: links)
        }
    }

    private func send(_ message: WireMessage, toAll links: [WorkerLink]) {
        for link in links { try? link.send(message) }
    }

    /// The scheduler's next batch, embedded and sent to the first stage.
    private func sendBatch() {
        guard let batch = shared.withLock({ $0.scheduler.nextBatchToSend() }) else { return }
        let hidden: [Float]
        do { hidden = try head.embed(batch.tokens) } catch {
            return schedule { $0.batchFailed(batch.id, .generation(.inference(error))) }
        }
        let message = Activations(requestID: batch.id, lastRowsOnly: true, type: settings.activationType,
                                  dim: UInt32(dim), entries: batch.entries,
                                  payload: ActivationCodec.encode(hidden, as: settings.activationType))
        sentAt[batch.id] = DispatchTime.now().uptimeNanoseconds
        do { try pipeline[0].send(.forward(message)) } catch {
            // The batch is replayed with the rest once the first stage is found lost.
            logger.warning("cannot send a batch: \(error)", metadata: ["stage": "0", "worker": "\(pipeline[0].endpoint)"])
        }
    }

    /// Sends a heartbeat to every worker there is; one silent for `workerTimeout` is lost.
    private func heartbeat() {
        nextHeartbeat = .now + settings.heartbeatInterval
        for link in links where link.hello != nil {
            let silent = ContinuousClock.now - link.lastHeard
            if silent > settings.workerTimeout {
                lost(link, "no answer for \(String(format: "%.1f", silent.totalSeconds)) s (the process stopped, or the network between us is down)")
                continue
            }
            do { try link.send(.heartbeat(Heartbeat(nonce: UInt64(DispatchTime.now().uptimeNanoseconds)))) } catch {
                lost(link, "\(error)")
            }
        }
        // Workers taken for lost are greeted again now and then, in case they only paused.
        for link in links where link.hello == nil && ContinuousClock.now - link.greeted > settings.workerTimeout {
            greet(link)
        }
        stages.withLock { $0 = pipeline.map(StageInfo.init) }
    }

    /// Ends every request with `error`, and releases their sequences on the stages.
    private func failAll(_ error: ClusterError, permanently: Bool) {
        let (told, release, hadWork) = shared.withLock { s in
            let hadWork = s.scheduler.running + s.scheduler.waitingCount > 0
            let (deliveries, release) = s.scheduler.failAll(error, permanently: permanently)
            if permanently { s.health = .failed(error) }
            return (s.tell(deliveries), release, hadWork)
        }
        if permanently { logger.error("\(error.description)") } else if hadWork { logger.notice("\(error.description)") }
        told()
        releaseOnEach(release, of: pipeline)
    }
}

extension SchedulerDriver.Shared {
    /// Takes the callers' streams for `deliveries` (those that finish leave the table); the
    /// returned closure yields to them, to be run once the lock is let go.
    mutating func tell(_ deliveries: [Scheduler.Delivery]) -> () -> Void {
        guard !deliveries.isEmpty else { return {} }
        var out: [(AsyncThrowingStream<GenerationEvent, any Error>.Continuation, Scheduler.Delivery)] = []
        for d in deliveries {
            switch d {
            case let .token(request, _, _):
                if let c = replies[request] { out.append((c, d)) }
            case let .finished(request, _):
                if let c = replies.removeValue(forKey: request) { out.append((c, d)) }
            }
        }
        return {
            for (c, d) in out {
                switch d {
                case let .token(_, id, text): c.yield(.token(id: id, text: text))
                case let .finished(_, .success(result)):
                    c.yield(.finished(result))
                    c.finish()
                case let .finished(_, .failure(error)): c.finish(throwing: error)
                }
            }
        }
    }
}

private extension Array {
    /// The elements in consecutive runs of at most `size` (none for an empty array).
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0 ..< Swift.min($0 + size, count)] }
    }
}
