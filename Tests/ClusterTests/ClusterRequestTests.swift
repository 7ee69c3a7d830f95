import Foundation
import StrataCoordinator
import StrataModel
import Synchronization
import TestSupport
import Testing

/// Requests as the HTTP layer makes them: submitted, streamed as events, cancelled by the
/// task that reads them, refused when the line is full.
@Suite(.serialized)
struct ClusterRequestTests {
    static let tiny = TinyModel(nLayers: 4, contextLength: 2048, seed: 11)

    /// The events of a request carry exactly the tokens and text of its result, which equals
    /// `generate`'s.
    @Test func eventsMatchTheResult() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let options = GenerationOptions(maxTokens: 20, stopAtEndOfGeneration: false)
        var tokens: [Int32] = [], text = ""
        var result: GenerationResult?
        for try await event in try cluster.submit(promptIDs: [5, 6, 7], options: options) {
            switch event {
            case let .token(id, piece): tokens.append(id); text += piece
            case let .finished(r): result = r
            }
        }
        let r = try #require(result)
        #expect(tokens == r.generatedIDs && tokens.count == 20)
        #expect(text == r.text)
        #expect(try await cluster.generate(promptIDs: [5, 6, 7], options: options).generatedIDs == tokens)
    }

    /// With one slot and one place in line, a third request is refused with `.busy`. Cancelling
    /// the task reading the waiting one takes it out of the line; cancelling the task reading
    /// the running one stops it, and every stage's KV cache is then empty. (The last stage is
    /// held with SIGSTOP from before the running request starts until it is cancelled, so it
    /// cannot have finished by itself.)
    @Test func busyAndCancel() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) {
            $0.maxSequences = 1
            $0.maxWaiting = 1
            $0.workerTimeout = .seconds(60)
        }
        defer { cluster.shutdown(stopWorkers: true) }
        let long = GenerationOptions(maxTokens: 2000, stopAtEndOfGeneration: false)
        /// Reads a request's events; true when it finished (not so when cancelled).
        func reader(_ events: AsyncThrowingStream<GenerationEvent, any Error>) -> Task<Bool, any Error> {
            Task {
                do {
                    for try await case .finished in events { return true }
                } catch ClusterError.cancelled {}
                return false
            }
        }
        let last = workers[1].child.process.processIdentifier
        kill(last, SIGSTOP)
        let running = reader(try cluster.submit(promptIDs: [1, 2, 3], options: long))
        let waiting = reader(try cluster.submit(promptIDs: [4, 5, 6], options: long))
        #expect(cluster.load.running == 1 && cluster.load.waiting == 1)
        #expect(throws: ClusterError.self) { _ = try cluster.submit(promptIDs: [7], options: long) }
        do { _ = try cluster.submit(promptIDs: [7], options: long) } catch {
            guard case .busy = error else { Issue.record("\(error)"); return }
        }

        waiting.cancel()
        #expect(try await waiting.value == false)
        #expect(await ChildProcess.poll(timeout: .seconds(5)) { cluster.load.waiting == 0 })
        #expect(cluster.load.running == 1)
        // The first stage's heartbeat shows the running sequence's cache.
        #expect(await ChildProcess.poll(timeout: .seconds(10)) { cluster.stages[0].sequences == 1 && cluster.stages[0].kvCacheBytes > 0 })

        running.cancel()
        // (The reader may still see the partial result before its stream ends: a race that
        // does not matter; the request has stopped either way.)
        _ = try await running.value
        #expect(cluster.load.running == 0 && cluster.load.waiting == 0)
        kill(last, SIGCONT)
        // Released on every stage once its batch is back from the last.
        #expect(await ChildProcess.poll(timeout: .seconds(10)) { cluster.stages.allSatisfy { $0.sequences == 0 && $0.kvCacheBytes == 0 } },
                "\(cluster.stages)")
        // The line is open again.
        #expect(try await cluster.generate(promptIDs: [7], options: GenerationOptions(maxTokens: 3)).generatedIDs.count == 3)
    }

    /// `generate` stops calling back once its callback says stop, and returns what was made
    /// by then: the start of the whole answer.
    @Test func generateStopsWhenTold() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        let options = GenerationOptions(maxTokens: 300, stopAtEndOfGeneration: false)
        let whole = try await cluster.generate(promptIDs: [1, 2], options: options).generatedIDs
        var pieces = 0
        let r = try await cluster.generate(promptIDs: [1, 2], options: options) { _ in
            pieces += 1
            return pieces < 5
        }
        #expect(pieces == 5)
        #expect(r.generatedIDs.count >= 5 && r.generatedIDs == Array(whole.prefix(r.generatedIDs.count)))
        #expect(cluster.load.running == 0)
    }
}

