import Foundation
import StrataCoordinator
import StrataModel
import StrataWire
import TestSupport
import Testing

/// The scheduler's logic without sockets or threads: admission, the bounded line, KV pages,
/// batching, sampling, cancellation and failure, event by event.
@Suite struct SchedulerTests {
    static let tokenizer: Tokenizer = {
        let path = try! TinyModel(vocab: 64, seed: 5).write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try! Tokenizer(gguf: GGUFFile(path: path))
    }()

    /// A scheduler over stages of `pages` pages of 16 positions each.
    func scheduler(maxSequences: Int = 4, maxWaiting: Int = 4, prefillChunk: Int = 512, batches: Int = 2,
                   context: Int = 64, pages: [Int] = [100, 100]) -> Scheduler {
        Scheduler(limits: .init(contextLength: context, maxSequences: maxSequences, maxWaiting: maxWaiting,
                                prefillChunk: prefillChunk, batchesInFlight: batches),
                  stages: pages.enumerated().map { .init(endpoint: "tcp://stage-\($0.offset)", pages: $0.element, pageRows: 16) },
                  tokenizer: Self.tokenizer)
    }

    /// Logits that make greedy sampling pick `token`.
    func pick(_ token: Int32) -> [Float] {
        var l = [Float](repeating: 0, count: 64)
        l[Int(token)] = 10
        return l
    }

    let greedy = GenerationOptions(maxTokens: 8, stopAtEndOfGeneration: false)

    /// Every sequence `toSample` names picks `token`.
    func answer(_ s: inout Scheduler, _ batch: Scheduler.Batch, token: Int32 = 9) -> [Scheduler.Delivery] {
        s.returned(batch.id, logits: s.toSample(batch.id).map { ($0, pick(token)) })
    }

    func next(_ s: inout Scheduler) throws -> Scheduler.Batch {
        let batch = s.nextBatchToSend()
        return try #require(batch)
    }

    func nothingToSend(_ s: inout Scheduler) -> Bool { s.nextBatchToSend() == nil }

    func tokens(_ d: [Scheduler.Delivery]) -> [RequestID: [Int32]] {
        var out: [RequestID: [Int32]] = [:]
        for case let .token(r, id, _) in d { out[r, default: []].append(id) }
        return out
    }

    func finished(_ d: [Scheduler.Delivery]) -> [RequestID: Result<GenerationResult, ClusterError>] {
        var out: [RequestID: Result<GenerationResult, ClusterError>] = [:]
        for case let .finished(r, outcome) in d { out[r] = outcome }
        return out
    }

    @Test func theLineIsBounded() throws {
        var s = scheduler(maxSequences: 2, maxWaiting: 1)
        for r in 1 ... 3 { try s.submit(RequestID(r), promptIDs: [1, 2], options: greedy) }
        #expect(s.running == 2 && s.waitingCount == 1)
        #expect(throws: ClusterError.self) { try s.submit(4, promptIDs: [1], options: greedy) }
        do { try s.submit(4, promptIDs: [1], options: greedy) } catch {
            guard case .busy(2, 1) = error else { Issue.record("\(error)"); return }
        }
        // Leaving the line makes room in it.
        let left = finished(s.cancel(3))[3]
        guard case .failure(.cancelled)? = left else { Issue.record("\(String(describing: left))"); return }
        try s.submit(4, promptIDs: [1], options: greedy)
        #expect(s.waitingCount == 1)
    }

    @Test func requestsThatCouldNeverRunAreRefused() {
        var s = scheduler(context: 64, pages: [100, 2])
        func refusal(_ prompt: [Int32], _ options: GenerationOptions) -> ClusterError? {
            do { try s.submit(1, promptIDs: prompt, options: options) } catch { return error }
            return nil
        }
        guard case .generation(.emptyPrompt) = refusal([], greedy) else { Issue.record("empty prompt"); return }
        guard case .generation(.promptTooLong(64, 64)) = refusal([Int32](repeating: 1, count: 64), greedy) else {
            Issue.record("long prompt"); return
        }
        // 40 positions take 3 pages of 16; stage 1 has 2 in all.
        guard case let .kvCacheTooSmall(40, endpoint, 32) = refusal([Int32](repeating: 1, count: 8), GenerationOptions(maxTokens: 32)) else {
            Issue.record("too big for a stage"); return
        }
        #expect(endpoint == "tcp://stage-1")
        #expect(refusal([Int32](repeating: 1, count: 8), GenerationOptions(maxTokens: 24)) == nil)
    }

    /// A batch holds the ready decode steps first, then prompt chunks oldest first within the
    /// prefill budget; a sequence has one batch in the pipeline at a time.
    @Test func batching() throws {
        var s = scheduler(prefillChunk: 6, batches: 2)
        try s.submit(1, promptIDs: [1, 2, 3, 4], options: greedy)
        try s.submit(2, promptIDs: [5, 6, 7, 8, 9], options: greedy)
        let first = try next(&s)
        #expect(first.entries == [.init(sequence: 1, position: 0, tokenCount: 4), .init(sequence: 2, position: 0, tokenCount: 2)])
        #expect(first.tokens == [1, 2, 3, 4, 5, 6])
        #expect(s.toSample(first.id) == [1])  // sequence 2's prompt is not done
        #expect(nothingToSend(&s))  // both are in the pipeline

        #expect(tokens(answer(&s, first, token: 11)) == [1: [11]])
        let second = try next(&s)
        #expect(second.entries == [.init(sequence: 1, position: 4, tokenCount: 1), .init(sequence: 2, position: 2, tokenCount: 3)])
        #expect(second.tokens == [11, 7, 8, 9] && s.toSample(second.id) == [1, 2])
        #expect(tokens(answer(&s, second, token: 12)) == [1: [12], 2: [12]])
        let third = try next(&s)
        #expect(third.entries == [.init(sequence: 1, position: 5, tokenCount: 1), .init(sequence: 2, position: 5, tokenCount: 1)])
        #expect(third.tokens == [12, 12])
    }

    /// A batch holds at most `batchRows` rows: decode steps first, then what is left of the
    /// prompt budget; the steps that do not fit go in the next batch.
    @Test func batchRowsBoundEveryBatch() throws {
        var s = Scheduler(limits: .init(contextLength: 64, maxSequences: 4, maxWaiting: 4, prefillChunk: 6, batchRows: 3, batchesInFlight: 4),
                          stages: [.init(endpoint: "tcp://stage", pages: 100, pageRows: 16)], tokenizer: Self.tokenizer)
        try s.submit(1, promptIDs: [1, 2, 3, 4], options: greedy)
        let first = try next(&s)
        #expect(first.entries == [.init(sequence: 1, position: 0, tokenCount: 3)])
        _ = answer(&s, first)
        for id in 2 ... 4 { try s.submit(RequestID(id), promptIDs: [5], options: greedy) }
        let prompts = try next(&s)
        #expect(prompts.entries == [.init(sequence: 1, position: 3, tokenCount: 1), .init(sequence: 2, position: 0, tokenCount: 1),
                                    .init(sequence: 3, position: 0, tokenCount: 1)])
        let last = try next(&s)
        #expect(last.entries == [.init(sequence: 4, position: 0, tokenCount: 1)])
        #expect(tokens(answer(&s, prompts)).count == 3 && tokens(answer(&s, last)).count == 1)
        let steps = try next(&s)
        #expect(steps.entries.map(\.sequence) == [1, 2, 3] && steps.tokens.count == 3)
        let rest = try next(&s)
        #expect(rest.entries.map(\.sequence) == [4])
    }

    /// No more than `batchesInFlight` batches are in the pipeline at once.
    @Test func batchesInFlightAreBounded() throws {
        var s = scheduler(batches: 1)
        try s.submit(1, promptIDs: [1, 2], options: greedy)
        let first = try next(&s)
        try s.submit(2, promptIDs: [3], options: greedy)
        #expect(nothingToSend(&s) && s.batchesInFlight == 1)
        _ = answer(&s, first)
        let second = try next(&s)
        #expect(second.entries.map(\.sequence) == [1, 2])
    }

    /// A request runs to `maxTokens`, its result holds what was sampled, and its sequence is
    /// released once it ends.
    @Test func aRequestRunsToItsEnd() throws {
        var s = scheduler()
        try s.submit(7, promptIDs: [1, 2, 3], options: GenerationOptions(maxTokens: 3, stopAtEndOfGeneration: false))
        var sampled: [Int32] = []
        var outcome: Result<GenerationResult, ClusterError>?
        for token: Int32 in [20, 21, 22] {
            let batch = try next(&s)
            let d = answer(&s, batch, token: token)
            sampled += tokens(d)[7] ?? []
            outcome = finished(d)[7] ?? outcome
        }
        #expect(sampled == [20, 21, 22])
        let result = try #require(try outcome?.get())
        #expect(result.generatedIDs == [20, 21, 22] && result.promptIDs == [1, 2, 3] && result.finishReason == .length)
        #expect(nothingToSend(&s))
        let released = s.releasable()
        #expect(released == [1] && s.running == 0 && s.reservedPages == [0, 0])
    }

    /// Each running sequence holds the pages of its prompt and `maxTokens` on every stage; a
    /// request that does not fit waits until one ends and is released, not merely ended.
    @Test func pagesDecideWhatRuns() throws {
        var s = scheduler(maxSequences: 8, pages: [4, 5])
        let options = GenerationOptions(maxTokens: 28, stopAtEndOfGeneration: false)  // 32 positions: 2 pages
        for r in 1 ... 3 { try s.submit(RequestID(r), promptIDs: [1, 2, 3, 4], options: options) }
        #expect(s.running == 2 && s.waitingCount == 1 && s.reservedPages == [4, 4])
        let batch = try next(&s)
        #expect(batch.entries.map(\.sequence) == [1, 2])
        // Cancelled while its batch is out: ended, but its pages stay taken until the batch is back.
        let cancelled = s.cancel(1)
        #expect(finished(cancelled)[1] != nil)
        let early = s.releasable()
        #expect(early.isEmpty && s.waitingCount == 1)
        #expect(tokens(answer(&s, batch)) == [2: [9]])  // the cancelled sequence samples nothing
        let released = s.releasable()
        #expect(released == [1])
        #expect(s.running == 2 && s.waitingCount == 0 && s.reservedPages == [4, 4])
    }

    @Test func cancellingARunningRequestEndsItWithWhatItHas() throws {
        var s = scheduler()
        try s.submit(1, promptIDs: [1, 2], options: greedy)
        let batch = try next(&s)
        _ = answer(&s, batch, token: 30)
        let outcome = finished(s.cancel(1))[1]
        let result = try #require(try outcome?.get())
        #expect(result.generatedIDs == [30] && result.finishReason == .stop)
        let again = s.cancel(1)
        #expect(again.isEmpty)  // twice does nothing
        #expect(nothingToSend(&s))
        let released = s.releasable()
        #expect(released == [1])
    }

    @Test func aFailedBatchFailsItsSequencesOnly() throws {
        var s = scheduler(prefillChunk: 2, batches: 2)
        try s.submit(1, promptIDs: [1, 2], options: greedy)
        let a = try next(&s)
        try s.submit(2, promptIDs: [3, 4], options: greedy)
        let b = try next(&s)
        let d = s.batchFailed(a.id, .stageFailed(endpoint: "tcp://stage-1", message: "out of pages"))
        guard case .failure(.stageFailed(_, "out of pages")) = finished(d)[1] else { Issue.record("\(d)"); return }
        #expect(finished(d)[2] == nil)
        #expect(tokens(answer(&s, b)) == [2: [9]])
        let released = s.releasable()
        #expect(released == [1])
    }

    /// A frame a stage could not read fails every batch in the pipeline; a permanent failure
    /// fails everything, waiting requests included, and every later submission.
    @Test func failures() throws {
        var s = scheduler(maxSequences: 1)
        try s.submit(1, promptIDs: [1], options: greedy)
        try s.submit(2, promptIDs: [2], options: greedy)
        _ = try next(&s)
        let failed = s.everyBatchFailed(.stageFailed(endpoint: "e", message: "malformed"))
        #expect(Set(finished(failed).keys) == [1])
        _ = s.releasable()
        #expect(s.running == 1)  // the waiting request started

        let lost = ClusterError.workerLost(endpoint: "tcp://stage-0", stage: 0, layers: 0 ..< 2, reason: "gone")
        try s.submit(3, promptIDs: [3], options: greedy)
        let (deliveries, release) = s.failAll(lost, permanently: true)
        #expect(Set(finished(deliveries).keys) == [2, 3] && release == [2])
        do { try s.submit(4, promptIDs: [1], options: greedy); Issue.record("accepted after a failure") } catch {
            guard case .workerLost = error else { Issue.record("\(error)"); return }
        }

        var t = scheduler()
        _ = t.failAll(.shutDown, permanently: false)
        #expect(t.failure == nil)
        do { try t.submit(1, promptIDs: [1], options: greedy); Issue.record("accepted while shutting down") } catch {
            guard case .shutDown = error else { Issue.record("\(error)"); return }
        }
    }

    // MARK: A stage lost, a new plan

    /// After a loss, nothing leaves until the new plan; then each running sequence replays its
    /// prompt and every sampled token but the last (nothing sampled), runs the last as a decode
    /// step at its own position, and goes on sampling as if nothing happened.
    @Test func aLostPipelineReplaysEverySequence() throws {
        var s = scheduler()
        try s.submit(1, promptIDs: [1, 2, 3], options: greedy)
        _ = answer(&s, try next(&s), token: 7)      // prompt → 7
        let step = try next(&s)                     // 7 at position 3, in flight when the stage is lost
        #expect(step.entries == [.init(sequence: 1, position: 3, tokenCount: 1)])
        s.pipelineLost()
        #expect(nothingToSend(&s))
        #expect(answer(&s, step).isEmpty)            // a batch of the old plan is forgotten
        try s.submit(2, promptIDs: [4, 5], options: greedy)  // waits for the new plan
        #expect(s.waitingCount == 1 && s.running == 1)

        _ = s.resume(stages: [.init(endpoint: "tcp://new", pages: 100, pageRows: 16)], plan: 2)
        let replay = try next(&s)
        #expect(replay.id >> 32 == 2)
        #expect(replay.tokens == [1, 2, 3, 4, 5])    // sequence 1's prompt; request 2's prompt
        #expect(replay.entries.first == .init(sequence: 1, position: 0, tokenCount: 3))
        #expect(s.toSample(replay.id).count == 1)    // only request 2's prompt is sampled
        let d = answer(&s, replay, token: 8)
        #expect(tokens(d) == [2: [8]])
        let resumed = try next(&s)                   // 7 at position 3 again, then 8 for request 2
        #expect(resumed.entries.first == .init(sequence: 1, position: 3, tokenCount: 1))
        #expect(resumed.tokens.first == 7)
        #expect(tokens(answer(&s, resumed, token: 9))[1] == [9])
    }

    /// A new plan that keeps the stages' caches: each sequence goes on from the positions every
    /// stage had run (those of the batches that came back): one that had sampled runs its last
    /// token at once, one in the middle of its prompt sends the rest of it.
    @Test func aPlanThatKeepsTheCachesGoesOnWhereEveryStageWas() throws {
        var s = scheduler(prefillChunk: 2)
        try s.submit(1, promptIDs: [1, 2], options: greedy)
        _ = answer(&s, try next(&s), token: 7)      // prompt → 7
        try s.submit(2, promptIDs: [3, 4, 5, 6], options: greedy)
        let b = try next(&s)                         // 7 at position 2; request 2's [3, 4]
        _ = answer(&s, b, token: 8)                  // → 8; request 2 has 2 positions run
        let lostInFlight = try next(&s)              // 8 at 3, request 2's [5, 6]: lost
        #expect(lostInFlight.entries.count == 2)
        s.pipelineLost()
        #expect(s.kept().map(\.tokens.count) == [3, 2])
        #expect(s.kept().first.map { Array($0.tokens) } == [1, 2, 7])
        let (d, release) = s.resume(stages: [.init(endpoint: "tcp://kept", pages: 100, pageRows: 16)], plan: 2, kept: true)
        #expect(d.isEmpty && release.isEmpty)
        let resumed = try next(&s)
        #expect(resumed.entries == [.init(sequence: 1, position: 3, tokenCount: 1), .init(sequence: 2, position: 2, tokenCount: 2)])
        #expect(resumed.tokens == [8, 5, 6])
        #expect(Set(s.toSample(resumed.id)) == [1, 2])
    }

    /// A new plan whose KV caches hold fewer sequences: the older ones keep running, the others
    /// wait at the head of the line, and resume where they were once pages free up.
    @Test func sequencesTheNewPlanCannotHoldWait() throws {
        var s = scheduler(context: 32, pages: [100])
        let options = GenerationOptions(maxTokens: 16, stopAtEndOfGeneration: false)
        try s.submit(1, promptIDs: [1, 2, 3, 4], options: options)
        try s.submit(2, promptIDs: [5, 6, 7, 8], options: options)
        _ = answer(&s, try next(&s), token: 7)
        s.pipelineLost()
        // 20 positions each: 2 pages of 16; the new stage has 2 pages in all.
        let (_, release) = s.resume(stages: [.init(endpoint: "tcp://small", pages: 2, pageRows: 16)], plan: 2)
        #expect(s.running == 1 && s.waitingCount == 1)
        #expect(release.count == 1)  // the one that waits starts over under a new sequence
        var seen: [RequestID: [Int32]] = [:]
        while let b = s.nextBatchToSend() {
            for (r, t) in tokens(answer(&s, b, token: 9)) { seen[r, default: []] += t }
            for id in s.releasable() { _ = id }
        }
        // Both ran to their end, the second after the first; each sampled 16 tokens in all.
        #expect(s.running == 0 && s.waitingCount == 0)
        #expect(seen[1]?.count == 15 && seen[2]?.count == 15)
    }

    /// No plan fits: everything fails with the reason, and so does every new request, until a
    /// plan serves again.
    @Test func unavailableFailsEverythingUntilResumed() throws {
        var s = scheduler()
        try s.submit(1, promptIDs: [1, 2], options: greedy)
        _ = try next(&s)
        let reason = ClusterError.noWorkersLeft(reason: "test")
        let (d, release) = s.unavailable(reason)
        #expect(finished(d).count == 1 && release == [1])
        #expect(throws: ClusterError.self) { try s.submit(2, promptIDs: [1], options: greedy) }
        _ = s.resume(stages: [.init(endpoint: "tcp://back", pages: 100, pageRows: 16)], plan: 3)
        try s.submit(3, promptIDs: [1], options: greedy)
        #expect(try next(&s).id >> 32 == 3)
    }
}
