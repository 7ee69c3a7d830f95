import Dispatch
import Foundation
import Synchronization
import StrataModel
import StrataWire
import ZeroMQ

/// What a request reports while it runs: each sampled token with the text it made final, then
/// once, the outcome.
public enum GenerationEvent: Sendable {
    /// `text` may be empty (a token that ends in the middle of a character, or the end-of-turn
    /// token). The last token's text includes whatever the generation held back until its end
    /// (an incomplete character, the prefix of a stop string that never completed).
    case token(id: Int32, text: String)
    case finished(Result<GenerationResult, ClusterError>)
}

/// A request in the cluster: cancel it to stop it wherever it is (waiting in line, in the
/// prompt, decoding); its KV cache is freed on every stage once no message of it is in the
/// pipeline. Cancelling a finished request does nothing.
public final class GenerationHandle: Sendable {
    let submission: Submission
    init(_ submission: Submission) { self.submission = submission }

    public func cancel() { submission.cancel() }
}

/// A caller's request on its way to the scheduler thread, and the answer on its way back.
final class Submission: @unchecked Sendable {
    let promptIDs: [Int32]
    let options: GenerationOptions
    /// Called on the scheduler's thread: keep it short.
    let onEvent: @Sendable (GenerationEvent) -> Void
    private let state = Mutex<(cancelled: Bool, completed: Bool)>((false, false))
    /// Wakes the scheduler when the request is cancelled.
    let wake: @Sendable () -> Void
    /// Called once, just before the outcome is delivered: the cluster's count of accepted requests.
    let onComplete: @Sendable () -> Void

    init(promptIDs: [Int32], options: GenerationOptions, onEvent: @escaping @Sendable (GenerationEvent) -> Void,
         wake: @escaping @Sendable () -> Void, onComplete: @escaping @Sendable () -> Void) {
        self.promptIDs = promptIDs
        self.options = options
        self.onEvent = onEvent
        self.wake = wake
        self.onComplete = onComplete
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        let first = state.withLock { s -> Bool in
            defer { s.cancelled = true }
            return !s.cancelled && !s.completed
        }
        if first { wake() }
    }

    func complete(_ outcome: Result<GenerationResult, ClusterError>) {
        let first = state.withLock { s -> Bool in
            defer { s.completed = true }
            return !s.completed
        }
        guard first else { return }
        onComplete()
        onEvent(.finished(outcome))
    }
}

extension Cluster {
    /// Hands a request to the scheduler and returns at once; `onEvent` receives its tokens and,
    /// last, its outcome, on the scheduler's thread (keep it short). Throws `.busy` when
    /// `maxSequences` are running and `maxWaiting` more wait in line.
    public func submit(promptIDs: [Int32], options: GenerationOptions,
                       onEvent: @escaping @Sendable (GenerationEvent) -> Void) throws(ClusterError) -> GenerationHandle {
        let submission = Submission(promptIDs: promptIDs, options: options, onEvent: onEvent,
                                    wake: { [weak self] in self?.noteCancellation() },
                                    onComplete: { [weak self] in self?.inbox.withLock { $0.accepted -= 1 } })
        let limit = settings.maxSequences + settings.maxWaiting
        let refusal = inbox.withLock { inbox -> ClusterError? in
            if let failure = inbox.failure { return failure }
            if inbox.stopping { return .shutDown }
            guard inbox.accepted < limit else {
                return .busy(running: settings.maxSequences, waiting: settings.maxWaiting)
            }
            inbox.accepted += 1
            inbox.submissions.append(submission)
            _ = try? inbox.waker?.send([1], dontWait: true)
            return nil
        }
        if let refusal { throw refusal }
        return GenerationHandle(submission)
    }

    /// Generates from `promptIDs` through the pipeline, blocking the calling thread until done.
    /// `onText` receives the text as it is produced (on the scheduler's thread: keep it short)
    /// and may return false to stop early.
    public func generate(promptIDs: [Int32], options: GenerationOptions,
                         onText: @escaping @Sendable (String) -> Bool = { _ in true }) throws(ClusterError) -> GenerationResult {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<GenerationResult, ClusterError>?>(nil)
        let handle = Mutex<GenerationHandle?>(nil)
        let h = try submit(promptIDs: promptIDs, options: options) { event in
            switch event {
            case let .token(_, text):
                if !text.isEmpty && !onText(text) { handle.withLock { $0?.cancel() } }
            case let .finished(result):
                outcome.withLock { $0 = result }
                done.signal()
            }
        }
        handle.withLock { $0 = h }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }

    /// Requests running and waiting in line.
    public var load: (running: Int, waiting: Int) {
        let accepted = inbox.withLock { $0.accepted }
        let running = runningCount.withLock { $0 }
        return (running, max(0, accepted - running))
    }

    /// A request was cancelled: the scheduler looks for it at its next turn.
    func noteCancellation() {
        inbox.withLock { inbox in
            inbox.cancellations = true
            _ = try? inbox.waker?.send([1], dontWait: true)
        }
    }

    /// Per-hop latency and stage compute figures since the last reset.
    public func latencyFigures(reset: Bool = false) -> LatencyRecorder {
        figures.withLock { figures in
            let copy = figures.samples
            if reset { figures.samples.reset() }
            return copy
        }
    }

    func runScheduler() {
        var scheduler = Scheduler(cluster: self)
        scheduler.run()
        stopped.signal()
    }
}

/// The scheduler's state, owned by its thread: every sequence in flight, the messages on their
/// way through the pipeline, and the loop that moves them.
struct Scheduler {
    let cluster: Cluster
    var waiting: [Submission] = []
    var active: [SequenceID: ActiveSequence] = [:]
    /// Admission order, so that older sequences prefill first.
    var order: [SequenceID] = []
    var inFlight: [UInt64: (sent: UInt64, sequences: [SequenceID])] = [:]
    var nextSequence: SequenceID = 1
    var nextRequest: UInt64 = 1
    var toRelease: [SequenceID] = []
    var results: [Activations] = []
    var nextHeartbeat = ContinuousClock.now
    /// Each stage's KV cache as its worker reported it: pages in all, positions per page.
    let kvPages: [(total: Int, rows: Int)]
    /// Pages reserved on each stage by the sequences running.
    var reservedPages: [Int]

    struct ActiveSequence {
        let submission: Submission
        var state: GenerationState
        var prefilled = 0
        var inFlight = false
        /// The sampled token to run next.
        var next: Int32?
        /// Ended (finished, cancelled or failed) while a message of it was still in the pipeline.
        var ended = false
        let admitted = ContinuousClock.now
        var firstToken: ContinuousClock.Instant?
        /// Pages reserved for it on each stage.
        let pages: [Int]
    }

    init(cluster: Cluster) {
        self.cluster = cluster
        kvPages = cluster.links.map { link in
            let r = link.report
            return (r.map { $0.kvPages > 0 ? Int($0.kvPages) : Int.max } ?? Int.max, Int(max(r?.kvPageRows ?? 1, 1)))
        }
        reservedPages = [Int](repeating: 0, count: cluster.links.count)
    }

    var links: [WorkerLink] { cluster.links }

    mutating func run() {
        while true {
            let untilHeartbeat = nextHeartbeat - .now
            let timeout = max(0, Int(untilHeartbeat.components.seconds * 1000 + untilHeartbeat.components.attoseconds / 1_000_000_000_000_000))
            let ready: [ZMQPollEvents]
            do {
                ready = try ZMQ.poll([(cluster.wakeReceiver, .readable)] + links.map { ($0.socket, .readable) }, timeoutMilliseconds: timeout)
            } catch {
                return fail(.model("the scheduler cannot poll its sockets: \(error)"))
            }
            if ready[0].contains(.readable) { while (try? cluster.wakeReceiver.receive(dontWait: true)) ?? nil != nil {} }
            let (new, stopping, cancellations) = cluster.inbox.withLock { inbox in
                defer {
                    inbox.submissions.removeAll()
                    inbox.cancellations = false
                }
                return (inbox.submissions, inbox.stopping, inbox.cancellations)
            }
            if stopping { return fail(.shutDown, permanently: false) }
            for s in new { admit(s) }
            if cancellations { cancelRequested() }
            for (link, events) in zip(links, ready.dropFirst()) where events.contains(.readable) {
                if let failure = drain(link) { return fail(failure) }
            }
            processResults()
            // Ended sequences go first: their pages may let waiting ones start in this send.
            releaseEnded()
            sendForward()
            // The head is done until results come back: free shared cores for the stages.
            if cluster.settings.sharedCores { cluster.head.pool.park() }
            cluster.runningCount.withLock { $0 = active.values.count { !$0.ended } }
            if ContinuousClock.now >= nextHeartbeat {
                if let failure = heartbeat() { return fail(failure) }
            }
        }
    }

    // MARK: Admission

    /// Positions a request may fill: its prompt and its most generated tokens, within the context.
    func positions(_ s: Submission) -> Int { min(s.promptIDs.count + max(s.options.maxTokens, 0), cluster.contextLength) }

    /// Pages a request takes on each stage.
    func pages(_ s: Submission) -> [Int] {
        let n = positions(s)
        return kvPages.map { (n + $0.rows - 1) / $0.rows }
    }

    mutating func admit(_ s: Submission) {
        guard !s.promptIDs.isEmpty else { return s.complete(.failure(.generation(.emptyPrompt))) }
        guard s.promptIDs.count < cluster.contextLength else {
            return s.complete(.failure(.generation(.promptTooLong(tokens: s.promptIDs.count, contextLength: cluster.contextLength))))
        }
        for (i, (need, stage)) in zip(pages(s), kvPages).enumerated() where need > stage.total {
            return s.complete(.failure(.kvCacheTooSmall(positions: positions(s), endpoint: links[i].endpoint,
                                                        holds: stage.total * stage.rows)))
        }
        waiting.append(s)
        startWaiting()
    }

    /// Starts the requests waiting in line, oldest first, while sequences are free and every
    /// stage has the KV cache pages the next one may fill (reserved for it until it ends, so
    /// that no stage runs out in the middle of a sequence).
    mutating func startWaiting() {
        while active.count < cluster.settings.maxSequences, let s = waiting.first {
            let need = pages(s)
            guard zip(need, zip(reservedPages, kvPages)).allSatisfy({ $0 + $1.0 <= $1.1.total }) else { break }
            waiting.removeFirst()
            for i in need.indices { reservedPages[i] += need[i] }
            let id = nextSequence
            nextSequence += 1
            let state = GenerationState(promptIDs: s.promptIDs, options: s.options, tokenizer: cluster.tokenizer,
                                        contextLength: cluster.contextLength)
            active[id] = ActiveSequence(submission: s, state: state, pages: need)
            order.append(id)
        }
    }

    /// Ends the requests whose callers cancelled them: those waiting leave the line, those
    /// running stop with what they have (their caches are released like any ended sequence's).
    mutating func cancelRequested() {
        waiting.removeAll { s in
            guard s.isCancelled else { return false }
            s.complete(.failure(.cancelled))
            return true
        }
        for id in order {
            guard var seq = active[id], !seq.ended, seq.submission.isCancelled else { continue }
            seq.state.cancel()
            active[id] = seq
            end(id, .success(result(of: seq)))
        }
    }

    // MARK: Messages from workers

    /// Takes every message waiting on a link; returns a failure that ends the cluster.
    mutating func drain(_ link: WorkerLink) -> ClusterError? {
        while true {
            let message: WireMessage?
            do { message = try link.receive() } catch let error as WireError {
                if case let .unsupportedVersion(v) = error {
                    return .protocolMismatch(endpoint: link.endpoint, message: "it sent protocol version \(v); this coordinator speaks \(Wire.protocolVersion)")
                }
                cluster.log("undecodable frame from \(link.endpoint): \(error)")
                continue
            } catch {
                return .workerLost(endpoint: link.endpoint, stage: link.index, layers: link.layers, reason: "\(error)")
            }
            guard let message else { return nil }
            switch message {
            case let .result(a): results.append(a)
            case let .heartbeat(h): link.lastHeartbeat = h
            case let .error(e): failRequest(e, from: link)
            default: cluster.log("unexpected \(message.kind) from \(link.endpoint)")
            }
        }
    }

    /// A stage could not run a message: its sequences fail with the stage's words.
    mutating func failRequest(_ e: WireErrorMessage, from link: WorkerLink) {
        var sequences: [SequenceID] = []
        if let request = inFlight.removeValue(forKey: e.requestID) {
            sequences = request.sequences
        } else if e.requestID == 0 && [.malformed, .unknownKind, .unsupportedVersion, .unknownPeer].contains(e.code) {
            // A frame the stage could not read: which request it carried is unknown, so every
            // request in the pipeline fails rather than waiting forever.
            sequences = inFlight.values.flatMap(\.sequences)
            inFlight.removeAll()
        }
        guard !sequences.isEmpty else {
            cluster.log("worker \(link.endpoint): \(e.message)")
            return
        }
        for id in sequences {
            guard var seq = active[id] else { continue }
            seq.inFlight = false
            active[id] = seq
            end(id, .failure(.stageFailed(endpoint: link.endpoint, message: e.message)))
        }
    }

    // MARK: Sampling

    mutating func processResults() {
        guard !results.isEmpty else { return }
        let dim = cluster.config.dim
        var hidden: [Float] = []
        var rows: [Int] = []
        var sampled: [SequenceID] = []
        var row = 0
        let now = DispatchTime.now().uptimeNanoseconds
        for message in results {
            guard let request = inFlight.removeValue(forKey: message.requestID) else { continue }
            cluster.figures.withLock {
                $0.record(roundTripNanos: now - request.sent, stageNanos: message.stageNanos, hops: links.count + 1)
            }
            let values: [Float]
            do { values = try ActivationCodec.decode(message.payload, as: message.type, count: message.entries.count * dim) } catch {
                for id in request.sequences { end(id, .failure(.stageFailed(endpoint: links.last!.endpoint, message: "\(error)"))) }
                continue
            }
            hidden += values
            for (i, entry) in message.entries.enumerated() {
                guard var seq = active[entry.sequence] else { continue }
                seq.inFlight = false
                active[entry.sequence] = seq
                if seq.ended || seq.prefilled < seq.state.promptIDs.count { continue }
                rows.append(row + i)
                sampled.append(entry.sequence)
            }
            row += message.entries.count
        }
        results.removeAll(keepingCapacity: true)
        guard !rows.isEmpty else { return }
        let logits: [Float]
        do { logits = try cluster.head.logits(hidden, rows: rows) } catch {
            for id in sampled { end(id, .failure(.generation(.inference(error)))) }
            return
        }
        let vocab = logits.count / rows.count
        for (i, id) in sampled.enumerated() {
            guard var seq = active[id] else { continue }
            if seq.firstToken == nil { seq.firstToken = .now }
            let step = seq.state.accept(logits: Array(logits[i * vocab ..< (i + 1) * vocab]))
            let text = seq.state.isFinished ? step.text + seq.state.finish() : step.text
            seq.submission.onEvent(.token(id: step.token, text: text))
            seq.next = step.next
            active[id] = seq
            if seq.state.isFinished { end(id, .success(result(of: seq))) }
        }
    }

    func result(of seq: ActiveSequence) -> GenerationResult {
        let first = seq.firstToken ?? .now
        return GenerationResult(promptIDs: seq.state.promptIDs, generatedIDs: seq.state.generatedIDs, text: seq.state.text,
                                finishReason: seq.state.finishReason ?? .length,
                                promptSeconds: (first - seq.admitted).totalSeconds, decodeSeconds: (ContinuousClock.now - first).totalSeconds,
                                decodeSteps: max(0, seq.state.generatedIDs.count - 1))
    }

    /// Answers the caller; the sequence's caches are released once no message of it is in the pipeline.
    mutating func end(_ id: SequenceID, _ outcome: Result<GenerationResult, ClusterError>) {
        guard var seq = active[id], !seq.ended else { return }
        seq.ended = true
        active[id] = seq
        seq.submission.complete(outcome)
    }

    mutating func releaseEnded() {
        for id in order where active[id]?.ended == true && active[id]?.inFlight == false {
            for (i, n) in active[id]!.pages.enumerated() { reservedPages[i] -= n }
            active[id] = nil
            toRelease.append(id)
        }
        order.removeAll { active[$0] == nil }
        if !toRelease.isEmpty {
            for link in links { try? link.send(.release(toRelease)) }
            toRelease.removeAll()
        }
        startWaiting()
    }

    // MARK: Sending

    /// One forward message with every sequence that is ready (decode steps first, then prompt
    /// chunks up to the prefill budget), unless `microBatches` messages are already out.
    mutating func sendForward() {
        let limit = cluster.settings.microBatches > 0 ? cluster.settings.microBatches : links.count
        guard inFlight.count < limit else { return }
        var entries: [Activations.Entry] = []
        var tokens: [Int32] = []
        var ids: [SequenceID] = []
        for id in order {
            guard var seq = active[id], !seq.inFlight, !seq.ended, let next = seq.next else { continue }
            entries.append(.init(sequence: id, position: UInt32(seq.state.history.count - 1), tokenCount: 1))
            tokens.append(next)
            seq.next = nil
            seq.inFlight = true
            active[id] = seq
            ids.append(id)
        }
        var budget = cluster.settings.prefillChunk
        for id in order where budget > 0 {
            guard var seq = active[id], !seq.inFlight, !seq.ended, seq.prefilled < seq.state.promptIDs.count else { continue }
            let n = min(seq.state.promptIDs.count - seq.prefilled, budget)
            entries.append(.init(sequence: id, position: UInt32(seq.prefilled), tokenCount: UInt32(n)))
            tokens += seq.state.promptIDs[seq.prefilled ..< seq.prefilled + n]
            seq.prefilled += n
            seq.inFlight = true
            active[id] = seq
            ids.append(id)
            budget -= n
        }
        guard !entries.isEmpty else { return }
        let hidden: [Float]
        do { hidden = try cluster.head.embed(tokens) } catch {
            for id in ids {
                active[id]?.inFlight = false
                end(id, .failure(.generation(.inference(error))))
            }
            return
        }
        let request = nextRequest
        nextRequest += 1
        let message = Activations(requestID: request, lastRowsOnly: true, type: cluster.settings.activationType,
                                  dim: UInt32(cluster.config.dim), entries: entries,
                                  payload: ActivationCodec.encode(hidden, as: cluster.settings.activationType))
        inFlight[request] = (DispatchTime.now().uptimeNanoseconds, ids)
        do { try links[0].send(.forward(message)) } catch {
            inFlight[request] = nil
            for id in ids {
                active[id]?.inFlight = false
                end(id, .failure(.stageFailed(endpoint: links[0].endpoint, message: "\(error)")))
            }
        }
    }

    // MARK: Liveness

    /// Sends a heartbeat to every worker; a worker silent for `workerTimeout` is lost.
    mutating func heartbeat() -> ClusterError? {
        nextHeartbeat = .now + cluster.settings.heartbeatInterval
        for link in links {
            let silent = ContinuousClock.now - link.lastHeard
            if silent > cluster.settings.workerTimeout {
                return .workerLost(endpoint: link.endpoint, stage: link.index, layers: link.layers,
                                   reason: "no answer for \(Int(silent.totalSeconds)) s (the process stopped, or the network between us is down)")
            }
            try? link.send(.heartbeat(Heartbeat(nonce: UInt64(DispatchTime.now().uptimeNanoseconds))))
        }
        cluster.stageSnapshot.withLock { $0 = links.map(cluster.stageInfo) }
        return nil
    }

    /// Ends every request with `error`; a permanent failure also refuses all later ones.
    mutating func fail(_ error: ClusterError, permanently: Bool = true) {
        if permanently || !active.isEmpty || !waiting.isEmpty { cluster.log(error.description) }
        let late = cluster.inbox.withLock { inbox in
            if permanently { inbox.failure = error }
            defer { inbox.submissions.removeAll() }
            return inbox.submissions
        }
        for s in waiting + late { s.complete(.failure(error)) }
        waiting.removeAll()
        for id in order { end(id, .failure(error)) }
        let ids = Array(active.keys)
        if !ids.isEmpty { for link in links { try? link.send(.release(ids)) } }
        active.removeAll()
        reservedPages = reservedPages.map { _ in 0 }
    }
}
