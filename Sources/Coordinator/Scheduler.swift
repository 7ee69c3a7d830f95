import StrataModel
import StrataWire

/// A caller's request, as the scheduler knows it.
public typealias RequestID = UInt64

/// The coordinator's scheduling logic, with no sockets and no threads: events go in
/// (a submission, a cancellation, a batch back from the last stage, a stage's error, a failure),
/// and what to do comes out (tokens and outcomes for callers, batches to send, sequences to
/// release). `SchedulerDriver` does the ZeroMQ work around it.
///
/// Every running sequence has the KV cache pages it may fill reserved on every stage from its
/// admission to its end, so no stage runs out in the middle of a sequence. Requests that do not
/// fit yet wait in line, oldest first; past `maxWaiting` of them, new ones are refused.
///
/// When a stage is lost the pipeline stops (`pipelineLost`): batches in flight are forgotten.
/// Where the new plan keeps the stages' KV caches (`resume(…, kept: true)`), every running
/// sequence goes on from the positions every stage had run (`kept()`); otherwise it is
/// replayed from the start (its prompt and the tokens it sampled, run through the new plan's
/// stages to rebuild its KV cache, sampling nothing) before it goes on. The sampler state stays
/// here, so the text goes on as if nothing happened. Requests keep joining the line meanwhile;
/// `resume` starts the new plan, `unavailable` fails everything while no plan fits.
package struct Scheduler {
    package struct Limits: Sendable {
        /// Tokens per sequence.
        package var contextLength: Int
        package var maxSequences: Int
        package var maxWaiting: Int
        /// Prompt tokens per batch, across sequences.
        package var prefillChunk: Int
        /// Rows per batch in all, decode steps and prompt tokens (`Assign.batchRows`).
        package var batchRows: Int
        /// Batches in the pipeline at once.
        package var batchesInFlight: Int

        /// `batchRows` defaults to what the others allow: a prompt chunk and a step of every sequence.
        package init(contextLength: Int, maxSequences: Int, maxWaiting: Int, prefillChunk: Int, batchRows: Int? = nil, batchesInFlight: Int) {
            self.contextLength = contextLength; self.maxSequences = maxSequences; self.maxWaiting = maxWaiting
            self.prefillChunk = prefillChunk; self.batchRows = batchRows ?? prefillChunk + maxSequences
            self.batchesInFlight = batchesInFlight
        }
    }

    /// One stage's KV cache, as its worker reported it.
    package struct StageCache: Sendable {
        package var endpoint: String
        /// Pages in all (`Int.max` when the worker does not say).
        package var pages: Int
        /// Positions per page.
        package var pageRows: Int

        package init(endpoint: String, pages: Int, pageRows: Int) {
            self.endpoint = endpoint; self.pages = pages; self.pageRows = pageRows
        }
    }

    /// What callers are told.
    package enum Delivery {
        /// A sampled token, and the text it made final (see `GenerationEvent.token`).
        case token(RequestID, id: Int32, text: String)
        case finished(RequestID, Result<GenerationResult, ClusterError>)
    }

    /// A batch for the first stage: these tokens at these positions of these sequences.
    package struct Batch {
        /// The wire's request ID; the last stage's result carries it back.
        package let id: UInt64
        package let entries: [Activations.Entry]
        package let tokens: [Int32]
    }

    package let limits: Limits
    package private(set) var stages: [StageCache]
    package let tokenizer: Tokenizer
    /// The plan batches are sent under: the top 32 bits of their IDs.
    package private(set) var plan: UInt32

    private var waiting: [Waiting] = []
    private var active: [SequenceID: Sequence] = [:]
    /// Admission order, so that older sequences prefill first.
    private var order: [SequenceID] = []
    /// Batches in the pipeline: their sequences, those whose last row is to be sampled, and
    /// where each sequence's positions in the batch end.
    private var inFlight: [UInt64: (sequences: [SequenceID], sample: [SequenceID], ends: [Int])] = [:]
    private var nextSequence: SequenceID = 1
    private var nextBatch: UInt64 = 1
    /// Pages reserved on each stage by the sequences running.
    package private(set) var reservedPages: [Int]
    /// Set once the cluster has failed for good: every later submission gets it.
    package private(set) var failure: ClusterError?
    private var stopped = false
    /// Where the pipeline is: no batch leaves unless it is up.
    package private(set) var pipeline: Pipeline = .up

    package enum Pipeline: Sendable {
        case up
        /// A stage was lost; a new plan is on its way (`resume`).
        case down
        /// No plan fits the workers there are: every request fails with this.
        case unavailable(ClusterError)
    }

    private struct Waiting {
        let request: RequestID
        let promptIDs: [Int32]
        let options: GenerationOptions
        /// A sequence that ran and no longer fit after a re-plan: it goes on where it was.
        var parked: Sequence?
    }

    private struct Sequence {
        let request: RequestID
        var state: GenerationState
        /// Tokens to run before decoding, `prefilled` of them sent: the prompt, or in a replay,
        /// the prompt and every sampled token but the last.
        var feed: [Int32]
        var prefilled = 0
        /// Replaying: once `feed` is through, the last sampled token runs next (nothing is sampled).
        var replaying = false
        /// Positions every stage has run (the batches that came back).
        var complete = 0
        var inFlight = false
        /// The sampled token to run next.
        var next: Int32?
        /// Ended (finished, cancelled or failed); released once no batch of it is in the pipeline.
        var ended = false
        let admitted = ContinuousClock.now
        var firstToken: ContinuousClock.Instant?
        /// Pages reserved for it on each stage.
        var pages: [Int]

        /// Goes on on a new plan's stages, whose KV caches hold its first `kept` positions (0:
        /// nothing): the rest of the tokens known run again, sampling nothing, and then the last
        /// sampled token.
        mutating func resume(keeping kept: Int) {
            inFlight = false
            complete = kept
            prefilled = kept
            next = nil
            if state.generatedIDs.isEmpty {
                feed = state.promptIDs
                replaying = false
            } else {
                feed = Array(state.history.dropLast())
                replaying = kept < feed.count
                if !replaying { next = state.history.last }
            }
        }
    }

    package init(limits: Limits, stages: [StageCache], tokenizer: Tokenizer, plan: UInt32 = 1) {
        self.limits = limits
        self.stages = stages
        self.tokenizer = tokenizer
        self.plan = plan
        reservedPages = [Int](repeating: 0, count: stages.count)
    }

    /// Sequences admitted and not ended.
    package var running: Int { active.values.count { !$0.ended } }
    /// Requests waiting in line for pages or a free sequence.
    package var waitingCount: Int { waiting.count }
    /// Batches sent and not yet back.
    package var batchesInFlight: Int { inFlight.count }

    // MARK: Submission and cancellation

    /// Takes a request into the line, or refuses it: with a failure that refuses everything,
    /// while shutting down, when running and waiting requests are at the most taken, or when
    /// the request could never run (empty, longer than the context, more KV cache than a stage has).
    package mutating func submit(_ request: RequestID, promptIDs: [Int32], options: GenerationOptions) throws(ClusterError) {
        if let failure { throw failure }
        if stopped { throw .shutDown }
        if case let .unavailable(error) = pipeline { throw error }
        guard running + waiting.count < limits.maxSequences + limits.maxWaiting else {
            throw .busy(running: limits.maxSequences, waiting: limits.maxWaiting)
        }
        guard !promptIDs.isEmpty else { throw .generation(.emptyPrompt) }
        guard promptIDs.count < limits.contextLength else {
            throw .generation(.promptTooLong(tokens: promptIDs.count, contextLength: limits.contextLength))
        }
        let n = positions(promptIDs: promptIDs, options: options)
        for (stage, need) in zip(stages, pages(positions: n)) where need > stage.pages {
            throw .kvCacheTooSmall(positions: n, endpoint: stage.endpoint, holds: stage.pages * stage.pageRows)
        }
        waiting.append(Waiting(request: request, promptIDs: promptIDs, options: options))
        startWaiting()
    }

    /// Ends a request wherever it is: one waiting leaves the line (`.cancelled`); one running
    /// stops with what it has. Unknown or ended requests are left alone.
    package mutating func cancel(_ request: RequestID) -> [Delivery] {
        if let i = waiting.firstIndex(where: { $0.request == request }) {
            let w = waiting.remove(at: i)
            guard var seq = w.parked else { return [.finished(request, .failure(.cancelled))] }
            seq.state.cancel()
            return [.finished(request, .success(result(of: seq)))]
        }
        guard let id = order.first(where: { active[$0]?.request == request && active[$0]?.ended == false }) else { return [] }
        active[id]!.state.cancel()
        return end(id, .success(result(of: active[id]!)))
    }

    // MARK: Batches

    /// The next batch to send, unless the pipeline holds `batchesInFlight` already or no
    /// sequence is ready: the decode steps that are ready, then prompt chunks, oldest sequence
    /// first, up to `prefillChunk` tokens; `batchRows` rows in all.
    package mutating func nextBatchToSend() -> Batch? {
        guard case .up = pipeline else { return nil }
        startWaiting()
        guard inFlight.count < limits.batchesInFlight else { return nil }
        var entries: [Activations.Entry] = []
        var tokens: [Int32] = []
        var ids: [SequenceID] = []
        var ends: [Int] = []
        var sample: [SequenceID] = []
        for id in order where tokens.count < limits.batchRows {
            guard var seq = active[id], !seq.inFlight, !seq.ended, let next = seq.next else { continue }
            entries.append(.init(sequence: id, position: UInt32(seq.state.history.count - 1), tokenCount: 1))
            tokens.append(next)
            seq.next = nil
            seq.inFlight = true
            active[id] = seq
            ids.append(id)
            ends.append(seq.state.history.count)
            sample.append(id)
        }
        var budget = min(limits.prefillChunk, limits.batchRows - tokens.count)
        for id in order where budget > 0 {
            guard var seq = active[id], !seq.inFlight, !seq.ended, seq.prefilled < seq.feed.count else { continue }
            let n = min(seq.feed.count - seq.prefilled, budget)
            entries.append(.init(sequence: id, position: UInt32(seq.prefilled), tokenCount: UInt32(n)))
            tokens += seq.feed[seq.prefilled ..< seq.prefilled + n]
            seq.prefilled += n
            seq.inFlight = true
            active[id] = seq
            ids.append(id)
            ends.append(seq.prefilled)
            if seq.prefilled == seq.feed.count && !seq.replaying { sample.append(id) }
            budget -= n
        }
        guard !entries.isEmpty else { return nil }
        let batch = Batch(id: UInt64(plan) << 32 | nextBatch & 0xFFFF_FFFF, entries: entries, tokens: tokens)
        nextBatch += 1
        inFlight[batch.id] = (ids, sample, ends)
        return batch
    }

    /// The sequences of a batch in the pipeline whose last row is to be sampled when it comes
    /// back (a decode step, or the last chunk of a prompt), unless they ended meanwhile.
    package func toSample(_ batch: UInt64) -> [SequenceID] {
        (inFlight[batch]?.sample ?? []).filter { active[$0]?.ended == false }
    }

    /// A batch came back from the last stage with the logits of the sequences `toSample(batch)`
    /// named: each samples its next token (unless it ended meanwhile).
    package mutating func returned(_ batch: UInt64, logits: [(SequenceID, [Float])]) -> [Delivery] {
        guard let sent = inFlight.removeValue(forKey: batch) else { return [] }
        for (id, end) in zip(sent.sequences, sent.ends) {
            guard var seq = active[id] else { continue }
            seq.inFlight = false
            seq.complete = max(seq.complete, end)
            // A replay is through: the KV cache is back, and the last sampled token runs next.
            if seq.replaying && seq.prefilled == seq.feed.count {
                seq.replaying = false
                seq.next = seq.state.history.last
            }
            active[id] = seq
        }
        var out: [Delivery] = []
        for (id, row) in logits {
            guard var seq = active[id], !seq.ended, sent.sample.contains(id) else { continue }
            if seq.firstToken == nil { seq.firstToken = .now }
            let step = seq.state.accept(logits: row)
            let text = seq.state.isFinished ? step.text + seq.state.finish() : step.text
            seq.next = step.next
            active[id] = seq
            out.append(.token(seq.request, id: step.token, text: text))
            if seq.state.isFinished { out += end(id, .success(result(of: seq))) }
        }
        return out
    }

    /// A batch could not go on (its send failed, a stage reported an error running it, the
    /// head could not read it back): its sequences fail with `error`.
    package mutating func batchFailed(_ batch: UInt64, _ error: ClusterError) -> [Delivery] {
        guard let sent = inFlight.removeValue(forKey: batch) else { return [] }
        return failSequences(sent.sequences, error)
    }

    /// A stage could not read a frame, so which batch it carried is unknown: every batch in
    /// the pipeline fails rather than waiting forever.
    package mutating func everyBatchFailed(_ error: ClusterError) -> [Delivery] {
        let sequences = inFlight.values.flatMap(\.sequences)
        inFlight.removeAll()
        return failSequences(sequences, error)
    }

    private mutating func failSequences(_ sequences: [SequenceID], _ error: ClusterError) -> [Delivery] {
        var out: [Delivery] = []
        for id in sequences where active[id] != nil {
            active[id]!.inFlight = false
            out += end(id, .failure(error))
        }
        return out
    }

    /// Sequences that ended and have no batch in the pipeline: their pages are free again and
    /// every stage may drop their KV cache. Requests waiting for those pages start next.
    package mutating func releasable() -> [SequenceID] {
        let done = order.filter { active[$0]?.ended == true && active[$0]?.inFlight == false }
        for id in done {
            for (i, n) in active[id]!.pages.enumerated() { reservedPages[i] -= n }
            active[id] = nil
        }
        if !done.isEmpty { order.removeAll { active[$0] == nil } }
        startWaiting()
        return done
    }

    // MARK: A stage lost, a new plan

    /// A stage is lost (or a new plan is coming): no batch leaves until `resume`, the batches in
    /// the pipeline are forgotten, and every running sequence goes on on the new plan from what
    /// its caches keep. Callers notice nothing but the pause.
    package mutating func pipelineLost() {
        if case .unavailable = pipeline {} else { pipeline = .down }
        inFlight.removeAll()
        for id in order { active[id]?.inFlight = false }
    }

    /// The running sequences and the positions of each that every stage has run: what a new
    /// plan that keeps the stages' caches keeps. Frozen while the pipeline is down.
    package func kept() -> [(sequence: SequenceID, tokens: ArraySlice<Int32>)] {
        order.compactMap { id in
            guard let seq = active[id], !seq.ended else { return nil }
            return (id, seq.state.history.prefix(seq.complete))
        }
    }

    /// No plan fits the workers there are: every request in line and running fails with
    /// `error`, and so do new ones until `resume`. Returns the sequences to release.
    package mutating func unavailable(_ error: ClusterError) -> (deliveries: [Delivery], release: [SequenceID]) {
        pipelineLost()
        pipeline = .unavailable(error)
        var out = waiting.map { Delivery.finished($0.request, .failure(error)) }
        waiting.removeAll()
        for id in order { out += end(id, .failure(error)) }
        return (out, releasable())
    }

    /// The new plan's stages are loaded: batches leave again, under `plan`. Running sequences
    /// keep their place, oldest first, while the new stages' KV caches hold them; they go on
    /// from the positions `kept()` named if the stages `kept` their caches, else from the start.
    /// The rest go back to the head of the line, where they start over once pages free up (the
    /// sequences to release on the stages are returned). A request the new stages could never
    /// hold fails.
    package mutating func resume(stages: [StageCache], plan: UInt32, kept: Bool = false) -> (deliveries: [Delivery], release: [SequenceID]) {
        self.stages = stages
        self.plan = plan
        pipeline = .up
        reservedPages = [Int](repeating: 0, count: stages.count)
        var out: [Delivery] = []
        var parked: [Waiting] = []
        var release: [SequenceID] = []
        for id in order {
            guard var seq = active[id] else { continue }
            seq.resume(keeping: kept ? seq.complete : 0)
            if seq.ended {
                seq.pages = seq.pages.map { _ in 0 }
                active[id] = seq
                continue
            }
            let n = positions(promptIDs: seq.state.promptIDs, options: seq.state.options)
            let need = pages(positions: n)
            if let (stage, _) = zip(stages, need).first(where: { $1 > $0.pages }) {
                out += end(id, .failure(.kvCacheTooSmall(positions: n, endpoint: stage.endpoint, holds: stage.pages * stage.pageRows)))
                active[id]!.pages = need.map { _ in 0 }
            } else if fits(need) {
                for i in need.indices { reservedPages[i] += need[i] }
                seq.pages = need
                active[id] = seq
            } else {
                seq.resume(keeping: 0)
                parked.append(Waiting(request: seq.request, promptIDs: seq.state.promptIDs, options: seq.state.options, parked: seq))
                active[id] = nil
                release.append(id)
            }
        }
        order.removeAll { active[$0] == nil }
        var line: [Waiting] = []
        for w in parked + waiting {
            let n = positions(promptIDs: w.promptIDs, options: w.options)
            if let (stage, _) = zip(stages, pages(positions: n)).first(where: { $1 > $0.pages }) {
                out.append(.finished(w.request, .failure(.kvCacheTooSmall(positions: n, endpoint: stage.endpoint, holds: stage.pages * stage.pageRows))))
            } else {
                line.append(w)
            }
        }
        waiting = line
        startWaiting()
        return (out, release)
    }

    // MARK: Failure and shutdown

    /// Ends every request with `error` and forgets every sequence (returned, for releasing on
    /// the stages still there). A permanent failure refuses all later requests; otherwise
    /// (a shutdown) they are refused with `.shutDown`.
    package mutating func failAll(_ error: ClusterError, permanently: Bool) -> (deliveries: [Delivery], release: [SequenceID]) {
        if permanently { failure = error } else { stopped = true }
        var out = waiting.map { Delivery.finished($0.request, .failure(error)) }
        waiting.removeAll()
        for id in order { out += end(id, .failure(error)) }
        let release = Array(active.keys).sorted()
        active.removeAll()
        order.removeAll()
        inFlight.removeAll()
        reservedPages = reservedPages.map { _ in 0 }
        return (out, release)
    }

    // MARK: Admission

    /// Positions a request may fill: its prompt and its most generated tokens, within the context.
    private func positions(promptIDs: [Int32], options: GenerationOptions) -> Int {
        min(promptIDs.count + max(options.maxTokens, 0), limits.contextLength)
    }

    /// Pages `positions` take on each stage.
    private func pages(positions n: Int) -> [Int] {
        stages.map { (n + $0.pageRows - 1) / $0.pageRows }
    }

    /// Starts the requests waiting in line, oldest first, while sequences are free and every
    /// stage has the pages the next one may fill.
    private mutating func startWaiting() {
        guard case .up = pipeline else { return }
        while active.count < limits.maxSequences, let w = waiting.first {
            let need = pages(positions: positions(promptIDs: w.promptIDs, options: w.options))
            guard fits(need) else { break }
            waiting.removeFirst()
            for i in need.indices { reservedPages[i] += need[i] }
            let id = nextSequence
            nextSequence += 1
            if var seq = w.parked {
                seq.pages = need
                active[id] = seq
            } else {
                let state = GenerationState(promptIDs: w.promptIDs, options: w.options, tokenizer: tokenizer,
                                            contextLength: limits.contextLength)
                active[id] = Sequence(request: w.request, state: state, feed: w.promptIDs, pages: need)
            }
            order.append(id)
        }
    }

    /// Whether every stage has `need` pages free.
    private func fits(_ need: [Int]) -> Bool {
        zip(need, zip(reservedPages, stages)).allSatisfy { $0 + $1.0 <= $1.1.pages }
    }

    private func result(of seq: Sequence) -> GenerationResult {
        let first = seq.firstToken ?? .now
        return GenerationResult(promptIDs: seq.state.promptIDs, generatedIDs: seq.state.generatedIDs, text: seq.state.text,
                                finishReason: seq.state.finishReason ?? .length,
                                promptSeconds: (first - seq.admitted).totalSeconds, decodeSeconds: (ContinuousClock.now - first).totalSeconds,
                                decodeSteps: max(0, seq.state.generatedIDs.count - 1))
    }

    /// Answers the caller; the sequence's pages and caches are released once no batch of it is
    /// in the pipeline (`releasable`).
    private mutating func end(_ id: SequenceID, _ outcome: Result<GenerationResult, ClusterError>) -> [Delivery] {
        guard let seq = active[id], !seq.ended else { return [] }
        active[id]!.ended = true
        return [.finished(seq.request, outcome)]
    }
}
