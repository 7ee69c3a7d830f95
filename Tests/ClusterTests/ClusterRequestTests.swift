import Foundation
import StrataCoordinator
import StrataModel
import Synchronization
import TestSupport
import Testing

/// Requests as the HTTP layer makes them: submitted, streamed as events, cancelled, refused when
/// the line is full.
@Suite(.serialized)
struct ClusterRequestTests {
    static let tiny = TinyModel(nLayers: 4, contextLength: 2048, seed: 11)

    /// Collects one request's events.
    final class Events: Sendable {
        let state = Mutex<(tokens: [Int32], text: String, outcome: Result<GenerationResult, ClusterError>?)>(([], "", nil))
        let done = DispatchSemaphore(value: 0)

        func take(_ event: GenerationEvent) {
            switch event {
            case let .token(id, text): state.withLock { $0.tokens.append(id); $0.text += text }
            case let .finished(r):
                state.withLock { $0.outcome = r }
                done.signal()
            }
        }

        var tokens: Int { state.withLock { $0.tokens.count } }
    }

    /// The events of a request carry exactly the tokens and text of its result, which equals
    /// the blocking `generate`.
    @Test func eventsMatchTheResult() throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let options = GenerationOptions(maxTokens: 20, stopAtEndOfGeneration: false)
        let events = Events()
        _ = try cluster.submit(promptIDs: [5, 6, 7], options: options, onEvent: events.take)
        #expect(events.done.wait(timeout: .now() + 30) == .success)
        let (tokens, text, outcome) = events.state.withLock { ($0.tokens, $0.text, $0.outcome) }
        let result = try #require(try outcome?.get())
        #expect(tokens == result.generatedIDs && tokens.count == 20)
        #expect(text == result.text)
        #expect(try cluster.generate(promptIDs: [5, 6, 7], options: options).generatedIDs == tokens)
    }

    /// With one slot and one place in line, a third request is refused with `.busy`; cancelling
    /// the waiting one ends it with `.cancelled`, cancelling the running one ends it early,
    /// and every stage's KV cache is then empty.
    @Test func busyAndCancel() throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { withExtendedLifetime(workers) {} }
        let cluster = try makeCluster(model: path, endpoints: workers.map(\.endpoint)) {
            $0.maxSequences = 1
            $0.maxWaiting = 1
        }
        defer { cluster.shutdown(stopWorkers: true) }
        let long = GenerationOptions(maxTokens: 2000, stopAtEndOfGeneration: false)
        let running = Events(), waiting = Events()
        let first = try cluster.submit(promptIDs: [1, 2, 3], options: long, onEvent: running.take)
        #expect(ChildProcess.poll(timeout: .seconds(10)) { running.tokens > 0 })
        let second = try cluster.submit(promptIDs: [4, 5, 6], options: long, onEvent: waiting.take)
        #expect(cluster.load.running == 1 && cluster.load.waiting == 1)
        #expect { _ = try cluster.submit(promptIDs: [7], options: long) { _ in } } throws: { error in
            guard case .busy = error as? ClusterError else { return false }
            return "\(error)".contains("busy")
        }

        second.cancel()
        #expect(waiting.done.wait(timeout: .now() + 10) == .success)
        #expect(waiting.tokens == 0)
        guard case .failure(.cancelled) = waiting.state.withLock({ $0.outcome }) else {
            Issue.record("a cancelled waiting request ended with \(String(describing: waiting.state.withLock { $0.outcome }))")
            return
        }

        // Wait for a heartbeat to see the running sequence's cache, then cancel it.
        #expect(ChildProcess.poll(timeout: .seconds(5)) { cluster.stages.allSatisfy { $0.sequences == 1 && $0.kvCacheBytes > 0 } })
        first.cancel()
        #expect(running.done.wait(timeout: .now() + 10) == .success)
        let partial = try #require(try running.state.withLock { $0.outcome }?.get())
        #expect(partial.generatedIDs.count < 2000)
        #expect(ChildProcess.poll(timeout: .seconds(5)) { cluster.stages.allSatisfy { $0.sequences == 0 && $0.kvCacheBytes == 0 } },
                "\(cluster.stages)")
        #expect(cluster.load.running == 0 && cluster.load.waiting == 0)
        // The line is open again.
        #expect(try cluster.generate(promptIDs: [7], options: GenerationOptions(maxTokens: 3)).generatedIDs.count == 3)
    }
}

@Suite struct HistogramTests {
    @Test func bucketsAreCumulative() {
        var h = Histogram(bounds: [0.1, 1, 10])
        for v in [0.05, 0.1, 0.5, 2, 50] { h.observe(v) }
        #expect(h.counts == [2, 1, 1, 1])
        #expect(h.cumulativeCounts == [2, 3, 4, 5])
        #expect(h.count == 5 && abs(h.sum - 52.65) < 1e-9)
    }
}
