import Foundation
import StrataCoordinator
import StrataModel
import Synchronization
import TestSupport
import Testing

/// Workers lost and back, over real processes: killed (first, middle, last stage; during the
/// prompt; during the load of the plan that replaces another; two at once), paused, restarted
/// on their address. Every greedy text is the text of the same requests undisturbed.
@Suite(.serialized)
struct RecoveryTests {
    static let model = TestPaths.defaultModel

    /// The reference prompts, each a request of `maxTokens` greedy tokens.
    static func prompts() throws -> [[Int32]] { try GreedyReference.load().prompts.map(\.prompt_ids) }

    static func start(_ workers: [WorkerProcess], _ configure: (inout ClusterSettings) -> Void = { _ in }) async throws -> Cluster {
        try await makeCluster(model: model, endpoints: workers.map(\.endpoint)) {
            $0.microBatches = 1
            configure(&$0)
        }
    }

    /// A stage killed while sequences run: its neighbour takes its layers and rebuilds their KV
    /// cache (from the log of what it sent on, or for the first stage, from the embeddings),
    /// every other stage keeps its caches, and every sequence goes on where it was.
    @Test(arguments: [0, 1, 2])
    func killedStageIsTakenOverKeepingTheCaches(stage: Int) async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        // Forwards of at most 16 + 8 rows: every rebuild (from the embeddings, from a log, sent
        // on) comes in parts, a sequence's positions across several.
        let cluster = try await Self.start(workers) {
            $0.prefillChunk = 16
            $0.maxSequences = 8
        }
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        // (Long enough that the requests still run when a busy test machine lets the streams
        // see their first token.)
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 120)
        let running = Flag()
        let run = try await streamAll(cluster, prompts, maxTokens: 120, after: 1) {
            if cluster.load.running > 0 { running.set() }
            workers[stage].kill()
        }
        #expect(running.isSet, "every request had ended before the kill")
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.recoveries >= 1 && cluster.health.isServing })
        #expect(cluster.keptRecoveries >= 1 && cluster.stages.count == 2)
        #expect(!cluster.stages.contains { $0.endpoint == workers[stage].endpoint })
        #expect(cluster.stages.map(\.layers.count).reduce(0, +) == 30)
    }

    /// A stage killed while streams run is taken over by its neighbour; started again on its
    /// address while they still run, it takes its layers back. Both switches keep the caches
    /// (only the layers that move are rebuilt: from the embeddings for the first stage, from
    /// the previous stage's log for the last), and the text is the undisturbed text.
    @Test(arguments: [0, 2])
    func killedAndBackKeepsTheCachesBothWays(stage: Int) async throws {
        let workers = try startWorkers(3, model: Self.model)
        let again = Mutex<WorkerProcess?>(nil)
        defer {
            workers.forEach { $0.kill() }
            again.withLock { $0?.kill() }
        }
        let cluster = try await Self.start(workers)
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 160)
        let endpoint = workers[stage].endpoint
        let back = Flag()
        let run = try await streamAll(cluster, prompts, maxTokens: 160, after: 1) {
            workers[stage].kill()
            // Once the neighbour serves its layers, the worker comes back.
            guard ChildProcess.poll(timeout: .seconds(10), { cluster.keptRecoveries >= 1 }) else { return }
            again.withLock { $0 = try? WorkerProcess(listen: endpoint, ["--model", Self.model, "--name", "back"]) }
            if cluster.load.running > 0 { back.set() }
        }
        #expect(back.isSet, "the requests had ended before the worker was back")
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.stages.count == 3 && cluster.health.isServing })
        #expect(cluster.keptRecoveries >= 2)
        #expect(cluster.stages.first { $0.endpoint == endpoint }?.layers == [0 ..< 10, 10 ..< 20, 20 ..< 30][stage])
    }

    /// Seeded sampling goes on as undisturbed too: the sampler's state is the coordinator's, and
    /// a replay samples nothing.
    @Test func seededSamplingIsReplayedToo() async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers)
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        var sampling = SamplingParameters.greedy
        sampling.temperature = 0.9
        sampling.topK = 40
        sampling.seed = 1234
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 40, sampling: sampling)
        let run = try await streamAll(cluster, prompts, maxTokens: 40, sampling: sampling, after: 1) { workers[1].kill() }
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.recoveries >= 1 })
        // (And the seed matters: another one gives other text.)
        sampling.seed = 99
        let other = try await streamAll(cluster, prompts, maxTokens: 40, sampling: sampling)
        #expect(other.texts != undisturbed.texts)
    }

    /// Killed while the prompts run through the pipeline, before any token.
    @Test func killedDuringThePrompt() async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers) { $0.prefillChunk = 8 }
        defer { cluster.shutdown() }
        // Long prompts in chunks of 8 tokens: many batches before the first token.
        let prompts = try Self.prompts().map { p in Array((0 ..< 8).flatMap { _ in p }.prefix(120)) }
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 12)
        let run = try await streamAll(cluster, prompts, maxTokens: 12, after: 0) { workers[1].kill() }
        #expect(run.tokensBeforeTheEvent == 0)
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.recoveries >= 1 })
    }

    /// Two stages lost at the same moment: the one worker left takes every layer.
    @Test func twoLostAtOnce() async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers)
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 40)
        let run = try await streamAll(cluster, prompts, maxTokens: 40, after: 8) {
            kill(workers[0].child.process.processIdentifier, SIGKILL)
            kill(workers[2].child.process.processIdentifier, SIGKILL)
        }
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.stages.map(\.endpoint) == [workers[1].endpoint] && cluster.health.isServing })
        #expect(cluster.stages.first?.layers == 0 ..< 30)
    }

    /// A second worker lost while the plan that replaces the first loads: the last worker has
    /// no copy of the model, so its new stage streams from the coordinator, and the other
    /// worker is killed meanwhile.
    @Test func lostDuringTheLoad() async throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("strata-recovery-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let workers = try startWorkers(2, model: Self.model) + [try WorkerProcess(["--cache-dir", cache, "--name", "streamed"])]
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers)
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 40)
        let killedWhileLoading = Flag()
        let run = try await streamAll(cluster, prompts, maxTokens: 40, after: 8) {
            workers[1].kill()
            // As soon as the new plan is out, the next worker goes too.
            if ChildProcess.poll(timeout: .seconds(10), { if case .recovering = cluster.health { true } else { false } }) {
                workers[0].kill()
                if case .recovering = cluster.health { killedWhileLoading.set() }
            }
        }
        #expect(killedWhileLoading.isSet)
        #expect(run.texts == undisturbed.texts)
        #expect(cluster.stages.map(\.endpoint) == [workers[2].endpoint])
    }

    /// A worker that hangs (SIGSTOP) is lost after the worker timeout, and the cluster goes on
    /// without it; once it runs again (SIGCONT) it is taken back into the plan.
    @Test func pausedWorkerIsLostThenTakenBack() async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers) { $0.workerTimeout = .seconds(2) }
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 40)
        let paused = workers[1].child.process.processIdentifier
        let run = try await streamAll(cluster, prompts, maxTokens: 40, after: 8) { kill(paused, SIGSTOP) }
        kill(paused, SIGCONT)
        #expect(run.texts == undisturbed.texts)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.stages.count == 3 && cluster.health.isServing })
        let again = try await streamAll(cluster, prompts, maxTokens: 40)
        #expect(again.texts == undisturbed.texts)
        #expect(cluster.stages.map(\.endpoint) == workers.map(\.endpoint))
    }

    /// A worker killed and started again on its address joins the plan again, live: the new
    /// plan loads while the streams go on, and they switch over without a pause for the load
    /// (the cluster never stops serving) and with the same text.
    @Test func restartedWorkerJoinsAgainLive() async throws {
        let workers = try startWorkers(3, model: Self.model)
        let again = Mutex<WorkerProcess?>(nil)
        defer {
            workers.forEach { $0.kill() }
            again.withLock { $0?.kill() }
        }
        let cluster = try await Self.start(workers)
        defer { cluster.shutdown() }
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 80)
        workers[2].kill()
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.stages.count == 2 && cluster.health.isServing })

        let stopWatching = Flag(), sawPause = Flag()
        let watcher = Thread {
            while !stopWatching.isSet {
                if !cluster.health.isServing { sawPause.set() }
                usleep(500)
            }
        }
        watcher.start()
        let endpoint = workers[2].endpoint
        let run = try await streamAll(cluster, prompts, maxTokens: 80, after: 4) {
            let w = try? WorkerProcess(listen: endpoint, ["--model", Self.model, "--name", "worker-2-again"])
            again.withLock { $0 = w }
        }
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.stages.count == 3 })
        stopWatching.set()
        #expect(run.texts == undisturbed.texts)
        #expect(!sawPause.isSet)
        let after = try await streamAll(cluster, prompts, maxTokens: 80)
        #expect(after.texts == undisturbed.texts)
    }

    /// No plan fits the one worker left (its memory holds half the model): requests fail naming
    /// what is missing, /health says so, and once the other worker runs again the cluster serves.
    @Test func noPlanFitsUntilAWorkerReturns() async throws {
        let workers = try startWorkers(2, model: Self.model, ["--max-memory", "150M"])
        defer { workers.forEach { $0.kill() } }
        let cluster = try await Self.start(workers) { $0.workerTimeout = .seconds(2); $0.maxSequences = 4 }
        defer { cluster.shutdown() }
        let prompt = try Self.prompts()[0]
        let undisturbed = try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 16))
        let paused = workers[0].child.process.processIdentifier
        kill(paused, SIGSTOP)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { if case .unavailable = cluster.health { true } else { false } })
        await #expect {
            _ = try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 16))
        } throws: { error in
            let text = "\(error)"
            return text.contains(workers[1].endpoint) && (text.contains("offers") || text.contains("allows"))
        }
        kill(paused, SIGCONT)
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.health.isServing && cluster.stages.count == 2 })
        let again = try await cluster.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 16))
        #expect(again.text == undisturbed.text)
    }

    /// A standby takes the place of a lost worker: the same cut, the survivor keeps its weights.
    @Test func standbyTakesTheLostWorkersPlace() async throws {
        let workers = try startWorkers(3, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: Self.model, endpoints: [workers[0].endpoint, workers[1].endpoint]) {
            $0.microBatches = 1
            $0.standby = [workers[2].endpoint]
        }
        defer { cluster.shutdown() }
        #expect(cluster.stages.map(\.endpoint) == [workers[0].endpoint, workers[1].endpoint])
        let prompts = try Self.prompts()
        let undisturbed = try await streamAll(cluster, prompts, maxTokens: 40)
        let run = try await streamAll(cluster, prompts, maxTokens: 40, after: 8) { workers[1].kill() }
        #expect(run.texts == undisturbed.texts)
        #expect(cluster.stages.map(\.endpoint) == [workers[0].endpoint, workers[2].endpoint])
        #expect(cluster.stages.map(\.layers) == [0 ..< 15, 15 ..< 30])
    }

    /// A coordinator with no workers at start serves once workers announce themselves
    /// (`strata worker --join`); until then it says why it cannot.
    @Test func workersThatAnnounceThemselvesAreTakenIn() async throws {
        // The coordinator knows the keys of the workers that may join, not where they are.
        let keys = try (0 ..< 2).map { _ in try TestKeys.makeWorkerKeys() }
        let cluster = try await makeCluster(model: Self.model, endpoints: []) {
            $0.listen = "tcp://127.0.0.1:*"
            $0.microBatches = 1
            $0.joinKeys = keys.map(\.keys.publicKey)
        }
        defer { cluster.shutdown() }
        let door = try #require(cluster.listenEndpoint)
        #expect(await ChildProcess.poll(timeout: .seconds(5)) { if case .unavailable = cluster.health { true } else { false } })
        await #expect { _ = try await cluster.generate(promptIDs: [1, 2], options: GenerationOptions(maxTokens: 2)) } throws: { error in
            "\(error)".contains("no worker has joined yet")
        }
        let first = try WorkerProcess(keys: keys[0], ["--model", Self.model, "--join", door, "--name", "joined-0"])
        defer { first.kill() }
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.health.isServing && cluster.stages.count == 1 })
        let prompts = try Self.prompts()
        let alone = try await streamAll(cluster, prompts, maxTokens: 24)
        let second = try WorkerProcess(keys: keys[1], ["--model", Self.model, "--join", door, "--name", "joined-1"])
        defer { second.kill() }
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { cluster.health.isServing && cluster.stages.count == 2 })
        #expect(cluster.stages.map(\.endpoint) == [first.endpoint, second.endpoint])
        let two = try await streamAll(cluster, prompts, maxTokens: 24)
        #expect(two.texts == alone.texts)
    }
}

extension ClusterHealth {
    var isServing: Bool { if case .serving = self { true } else { false } }
}

/// What a set of concurrent streams produced.
struct StreamRun {
    var texts: [String]
    /// Tokens the first stream had when `event` ran.
    var tokensBeforeTheEvent: Int
}

/// Runs `prompts` at once through `cluster`, greedy unless told, `maxTokens` each; once the first stream
/// has `after` tokens, runs `event` (once). On a busy machine the streams' readers may lag far
/// behind the pipeline, so the event also runs once the pipeline has taken `after` steps past
/// the prompts' (the coordinator's count of results), whichever comes first.
func streamAll(_ cluster: Cluster, _ prompts: [[Int32]], maxTokens: Int, sampling: SamplingParameters = .greedy, after: Int = .max,
               event: @escaping @Sendable () -> Void = {}) async throws -> StreamRun {
    let options = GenerationOptions(maxTokens: maxTokens, sampling: sampling)
    _ = cluster.latencyFigures(reset: true)
    let streams = try prompts.map { try cluster.submit(promptIDs: $0, options: options) }
    let trigger = Trigger(event)
    if after == 0 { trigger.fire(tokens: 0) }
    let done = Flag()
    defer { done.set() }
    if after > 0 && after < .max {
        Thread.detachNewThread {
            while !done.isSet && trigger.firedAt == nil {
                if cluster.latencyFigures().perHopNanos.count > after { trigger.fire(tokens: after) }
                usleep(1_000)
            }
        }
    }
    let texts = try await withThrowingTaskGroup(of: (Int, String).self) { group in
        for (i, events) in streams.enumerated() {
            group.addTask {
                var tokens = 0
                for try await e in events {
                    if case let .finished(r) = e { return (i, r.text) }
                    tokens += 1
                    if i == 0 && tokens == after { trigger.fire(tokens: tokens) }
                }
                return (i, "")
            }
        }
        var out = [String](repeating: "", count: prompts.count)
        for try await (i, text) in group { out[i] = text }
        return out
    }
    return StreamRun(texts: texts, tokensBeforeTheEvent: trigger.firedAt ?? -1)
}

/// Runs an event once, and remembers how many tokens there were when it did.
final class Trigger: Sendable {
    private let event: @Sendable () -> Void
    private let fired = Mutex<Int?>(nil)
    init(_ event: @escaping @Sendable () -> Void) { self.event = event }
    var firedAt: Int? { fired.withLock { $0 } }
    func fire(tokens: Int) {
        let first = fired.withLock { f in
            defer { if f == nil { f = tokens } }
            return f == nil
        }
        if first { event() }
    }
}
