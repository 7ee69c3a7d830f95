import Dispatch
import Foundation
import Logging
import Metrics
import StrataModel
import StrataWire
import Synchronization
import ZeroMQ

/// Runs the `Scheduler` over the workers' sockets, on a thread of its own: it polls the links,
/// hands what comes back to the scheduler (after computing the logits with the head), sends the
/// batches and releases the scheduler asks for, and sends heartbeats. Callers submit and cancel
/// from any thread; the scheduler's state is behind one lock, and an inproc socket wakes the
/// thread when a caller changed something.
final class SchedulerDriver: @unchecked Sendable {
    private let links: [WorkerLink]
    private let head: LlamaEngine
    private let settings: ClusterSettings
    private let dim: Int
    private let logger: Logger
    private let wakeReceiver: ZMQSocket
    private let done = DispatchSemaphore(value: 0)

    private let shared: Mutex<Shared>
    /// Per-hop latency and compute time of every batch since the last reset (for benchmarks).
    let latency = Mutex(LatencyRecorder())
    /// Each stage's compute time per batch, and the time each hop adds (swift-metrics).
    private let stageCompute: [Metrics.Timer]
    private let hopLatency = Metrics.Timer(label: "strata_hop_latency_seconds")
    /// The stages as last reported.
    let stages: Mutex<[StageInfo]>

    fileprivate struct Shared: ~Copyable {
        var scheduler: Scheduler
        var replies: [RequestID: AsyncThrowingStream<GenerationEvent, any Error>.Continuation] = [:]
        var nextRequest: RequestID = 1
        var stopping = false
        var waker: ZMQSocket?

        /// Wakes the driver's thread (at most one wake-up waits at a time; more are not needed).
        func wake() { _ = try? waker?.send([1], dontWait: true) }
    }

    /// Takes over the links of a cluster whose stages are loaded, and starts the thread.
    init(links: [WorkerLink], head: LlamaEngine, config: LlamaConfig, tokenizer: Tokenizer, settings: ClusterSettings,
         contextLength: Int, context: ZMQContext, stageInfo: [StageInfo], logger: Logger) throws(ZMQError) {
        self.links = links
        self.head = head
        self.settings = settings
        self.logger = logger
        dim = config.dim
        let limits = Scheduler.Limits(
            contextLength: contextLength, maxSequences: settings.maxSequences, maxWaiting: settings.maxWaiting,
            prefillChunk: settings.prefillChunk, batchesInFlight: settings.microBatches > 0 ? settings.microBatches : links.count)
        let caches = links.map { link in
            Scheduler.StageCache(endpoint: link.endpoint, pages: link.report.map { $0.kvPages > 0 ? Int($0.kvPages) : Int.max } ?? Int.max,
                                 pageRows: Int(max(link.report?.kvPageRows ?? 1, 1)))
        }
        let wake = "inproc://strata-scheduler-\(UUID().uuidString)"
        wakeReceiver = try ZMQSocket(context, type: .pull)
        try wakeReceiver.bind(wake)
        let waker = try ZMQSocket(context, type: .push)
        try waker.connect(wake)
        shared = Mutex(Shared(scheduler: Scheduler(limits: limits, stages: caches, tokenizer: tokenizer), waker: waker))
        stageCompute = links.map { Metrics.Timer(label: "strata_stage_compute_seconds", dimensions: [("stage", "\($0.index)"), ("worker", $0.endpoint)]) }
        stages = Mutex(stageInfo)
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

    /// Why the cluster stopped serving, or nil while it serves.
    var failure: ClusterError? { shared.withLock { $0.scheduler.failure } }

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
        while true {
            let timeout = max(0, (nextHeartbeat - .now).milliseconds)
            let ready: [ZMQPollEvents]
            do {
                ready = try ZMQ.poll([(wakeReceiver, .readable)] + links.map { ($0.socket, .readable) }, timeoutMilliseconds: timeout)
            } catch {
                return failAll(.model("the scheduler cannot poll its sockets: \(error)"), permanently: true)
            }
            if ready[0].contains(.readable) { while (try? wakeReceiver.receive(dontWait: true)) ?? nil != nil {} }
            if shared.withLock({ $0.stopping }) { return failAll(.shutDown, permanently: false) }
            for (link, events) in zip(links, ready.dropFirst()) where events.contains(.readable) {
                if let failure = drain(link) { return failAll(failure, permanently: true) }
            }
            sample()
            // Ended sequences go first: their pages may let waiting requests into this batch.
            release()
            sendBatch()
            // The head is done until results come back: free shared cores for the stages.
            if settings.sharedCores { head.pool.park() }
            if ContinuousClock.now >= nextHeartbeat, let failure = heartbeat() { return failAll(failure, permanently: true) }
        }
    }

    /// Runs `body` on the scheduler under the lock, then tells callers what it delivered.
    private func schedule(_ body: (inout Scheduler) -> [Scheduler.Delivery]) {
        let told = shared.withLock { s in s.tell(body(&s.scheduler)) }
        told()
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
                return .workerLost(endpoint: link.endpoint, stage: link.index, layers: link.layers, reason: "\(error)")
            }
            guard let message else { return nil }
            switch message {
            case let .result(a): results.append(a)
            case let .heartbeat(h): link.lastHeartbeat = h
            case let .error(e): stageError(e, from: link)
            default: logger.warning("unexpected \(message.kind)", metadata: ["worker": "\(link.endpoint)"])
            }
        }
    }

    /// A stage could not run a batch: its sequences fail with the stage's words.
    private func stageError(_ e: WireErrorMessage, from link: WorkerLink) {
        let error = ClusterError.stageFailed(endpoint: link.endpoint, message: e.message)
        if sentAt.removeValue(forKey: e.requestID) != nil {
            schedule { $0.batchFailed(e.requestID, error) }
        } else if e.requestID == 0 && [.malformed, .unknownKind, .unsupportedVersion, .unknownPeer].contains(e.code) {
            sentAt.removeAll()
            schedule { $0.everyBatchFailed(error) }
        } else {
            logger.warning("\(e.message)", metadata: ["stage": "\(link.index)", "worker": "\(link.endpoint)"])
        }
    }

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
                let error = ClusterError.stageFailed(endpoint: links.last!.endpoint, message: "\(error)")
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
        for (timer, nanos) in zip(stageCompute, stageNanos) { timer.recordNanoseconds(Int64(clamping: nanos)) }
        let compute = stageNanos.reduce(0, +)
        let perHop = roundTripNanos > compute ? (roundTripNanos - compute) / UInt64(links.count + 1) : 0
        hopLatency.recordNanoseconds(Int64(clamping: perHop))
        latency.withLock { $0.record(perHopNanos: perHop, computeNanos: compute) }
    }

    private func release() {
        let ids = shared.withLock { $0.scheduler.releasable() }
        guard !ids.isEmpty else { return }
        for link in links { try? link.send(.release(ids)) }
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
        do { try links[0].send(.forward(message)) } catch {
            sentAt[batch.id] = nil
            schedule { $0.batchFailed(batch.id, .stageFailed(endpoint: links[0].endpoint, message: "\(error)")) }
        }
    }

    /// Sends a heartbeat to every worker; a worker silent for `workerTimeout` is lost.
    private func heartbeat() -> ClusterError? {
        nextHeartbeat = .now + settings.heartbeatInterval
        for link in links {
            let silent = ContinuousClock.now - link.lastHeard
            if silent > settings.workerTimeout {
                return .workerLost(endpoint: link.endpoint, stage: link.index, layers: link.layers,
                                   reason: "no answer for \(Int(silent.totalSeconds)) s (the process stopped, or the network between us is down)")
            }
            try? link.send(.heartbeat(Heartbeat(nonce: UInt64(DispatchTime.now().uptimeNanoseconds))))
        }
        stages.withLock { $0 = links.map(StageInfo.init) }
        return nil
    }

    /// Ends every request with `error`, and releases their sequences on the stages.
    private func failAll(_ error: ClusterError, permanently: Bool) {
        let (told, release, hadWork) = shared.withLock { s in
            let hadWork = s.scheduler.running + s.scheduler.waitingCount > 0
            let (deliveries, release) = s.scheduler.failAll(error, permanently: permanently)
            return (s.tell(deliveries), release, hadWork)
        }
        if permanently { logger.error("\(error.description)") } else if hadWork { logger.notice("\(error.description)") }
        told()
        if !release.isEmpty { for link in links { try? link.send(.release(release)) } }
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
