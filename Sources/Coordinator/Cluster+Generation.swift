import StrataModel
import Synchronization

/// What a request reports while it runs: each sampled token with the text it made final, then
/// once, the outcome. A request that fails ends its stream with a `ClusterError` instead.
public enum GenerationEvent: Sendable {
    /// `text` may be empty (a token that ends in the middle of a character, or the end-of-turn
    /// token). The last token's text includes whatever the generation held back until its end
    /// (an incomplete character, the prefix of a stop string that never completed).
    case token(id: Int32, text: String)
    case finished(GenerationResult)
}

extension Cluster {
    /// Starts a request and returns its events: tokens as they are sampled, then `.finished`;
    /// a failure ends the stream with a `ClusterError`. Cancelling the task that reads the
    /// stream, or dropping the stream, stops the request wherever it is (waiting in line, in
    /// the prompt, decoding) and frees its KV cache on every stage.
    ///
    /// Throws at once, without starting anything, when `maxSequences` are running and
    /// `maxWaiting` more wait in line (`.busy`), when the request could never run (an empty
    /// prompt, one longer than the context, more KV cache than a stage has), after a failure
    /// that stopped the cluster, and once it is shutting down.
    public func submit(promptIDs: [Int32], options: GenerationOptions) throws(ClusterError) -> AsyncThrowingStream<GenerationEvent, any Error> {
        try driver.submit(promptIDs: promptIDs, options: options).events
    }

    /// Generates from `promptIDs` through the pipeline. `onText` receives the text as it is
    /// produced and may return false to stop early (the result then holds what was made).
    public func generate(promptIDs: [Int32], options: GenerationOptions,
                         onText: (String) -> Bool = { _ in true }) async throws(ClusterError) -> GenerationResult {
        let (request, events) = try driver.submit(promptIDs: promptIDs, options: options)
        var stopped = false
        do {
            for try await event in events {
                switch event {
                case let .token(_, text):
                    if !stopped && !text.isEmpty && !onText(text) {
                        stopped = true
                        driver.cancel(request)
                    }
                case let .finished(result):
                    return result
                }
            }
        } catch let error as ClusterError {
            throw error
        } catch {
            throw .cancelled
        }
        throw .cancelled
    }

    /// Requests running and waiting in line.
    public var load: (running: Int, waiting: Int) { driver.load }

    /// Per-hop latency and stage compute figures since the last reset.
    public func latencyFigures(reset: Bool = false) -> LatencyRecorder {
        driver.latency.withLock { recorder in
            let copy = recorder
            if reset { recorder.reset() }
            return copy
        }
    }
}

extension Cluster {
    /// Generates from every prompt at once, as separate requests; the results in prompt order.
    public func generateAll(_ prompts: [[Int32]], options: GenerationOptions) async -> [Result<GenerationResult, ClusterError>] {
        await withTaskGroup(of: (Int, Result<GenerationResult, ClusterError>).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask {
                    do throws(ClusterError) { return (i, .success(try await self.generate(promptIDs: prompt, options: options))) } catch {
                        return (i, .failure(error))
                    }
                }
            }
            var results = [Result<GenerationResult, ClusterError>?](repeating: nil, count: prompts.count)
            for await (i, r) in group { results[i] = r }
            return results.map { $0! }
        }
    }
}
