import Foundation
import Logging
import StrataModel
import StrataWire
import Synchronization
import ZeroMQ

/// The worker's compute thread: it runs batches, in the order they came, on the stage of the
/// plan each was sent under, and owns the stages while it does; a loader thread beside it
/// checks and loads the stage of a new plan meanwhile. The thread that owns the sockets
/// (`WorkerServer`) hands them jobs and takes back what they produced, so that it answers
/// heartbeats, and every other message, while a long batch or a load is under way: a slow
/// batch is never taken for a dead worker, and a new plan loads while the last one serves.
final class StageThread: @unchecked Sendable {
    enum Job: Sendable {
        /// Check `file`'s tensors of the assigned layers against the assignment, and load them
        /// (on the loader thread). `cached`: the file is a stage file from an earlier stream; if
        /// it does not check out, it is deleted and the stage streamed again.
        case load(GGUFFile, Assign, what: String, cached: Bool)
        case run([Activations])
        /// Drop sequences from every stage held, and pass the release on if it travels.
        case release(Release)
        /// Drop the stages of plans before this one.
        case retire(before: UInt32)
        /// A stage the loader made, to serve its plan from now on.
        case install(Stage, LoadReport)
        /// What the loader has to tell the socket thread (only the compute thread wakes it).
        case relay(Outcome)
    }

    enum Outcome: Sendable {
        /// A stage loaded (carried from the loader to the compute thread, which installs it;
        /// nil once installed, as the socket thread receives it).
        case loaded(Assign, LoadReport, Stage?)
        case loadFailed(WireErrorMessage)
        /// The cached stage file did not check out (and is gone): stream the stage.
        case streamInstead(Assign)
        /// A batch's activations: for the next stage, or from the last one, for the coordinator.
        case output(Activations)
        /// A release done here, for the next stage of its plan.
        case passOn(Release)
        /// A batch that could not run: for the coordinator.
        case failed(WireErrorMessage)

        /// What the socket thread is told (never a stage).
        var forSocket: Outcome {
            if case let .loaded(a, report, _) = self { return .loaded(a, report, nil) }
            return self
        }
    }

    /// What heartbeats report, kept current by the compute thread.
    let cachedSequences = Atomic<Int>(0)
    let cacheBytes = Atomic<Int>(0)

    private let settings: WorkerSettings
    private let memoryLimit: UInt64
    private let digests: DigestCache
    private let name: String
    private var logger: Logger
    /// The stages by plan: the last plan's, and until its first batch, the one before.
    /// Touched by the compute thread, and read by the loader under `held`.
    private let held = Mutex<[UInt32: Stage]>([:])
    /// Loads, one at a time, beside the compute thread.
    private let loads = DispatchQueue(label: "strata-loader")

    private struct Queue {
        var jobs: [Job] = []
        var outcomes: [Outcome] = []
        var closed = false
    }
    private let queue = Mutex(Queue())
    private let jobsWaiting = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Wakes the socket thread when outcomes wait (used by the compute thread only).
    private let waker: ZMQSocket

    /// Starts the thread; `wake` is an inproc endpoint the socket thread pulls on.
    init(settings: WorkerSettings, memoryLimit: UInt64, digests: DigestCache, name: String, logger: Logger,
         context: ZMQContext, wake: String) throws(ZMQError) {
        self.settings = settings
        self.memoryLimit = memoryLimit
        self.digests = digests
        self.name = name
        self.logger = logger
        waker = try ZMQSocket(context, type: .push)
        try waker.connect(wake)
        let thread = Thread { [self] in
            loop()
            waker.close()
            finished.signal()
        }
        thread.name = "strata-stage"
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Queues a job (from the socket thread).
    func submit(_ job: Job) {
        queue.withLock { $0.jobs.append(job) }
        jobsWaiting.signal()
    }

    /// What the jobs done so far produced, in order (from the socket thread).
    func takeOutcomes() -> [Outcome] {
        queue.withLock { q in
            defer { q.outcomes.removeAll() }
            return q.outcomes
        }
    }

    /// Lets the job under way finish, drops the rest and waits for the thread to end.
    func close() {
        queue.withLock { $0.closed = true; $0.jobs.removeAll() }
        jobsWaiting.signal()
        finished.wait()
    }

    // MARK: The compute thread

    private func loop() {
        while true {
            jobsWaiting.wait()
            let (job, more) = queue.withLock { q -> (Job?, Bool) in
                if q.closed || q.jobs.isEmpty { return (nil, false) }
                return (q.jobs.removeFirst(), !q.jobs.isEmpty)
            }
            guard let job else {
                if queue.withLock({ $0.closed }) { return }
                continue
            }
            let outcomes = perform(job)
            let stages = held.withLock { Array($0.values) }
            // With nothing queued the batch has moved on: shared cores belong to the other
            // stages until the next one.
            if !more { for stage in stages where stage.parksBetweenBatches { stage.engine.pool.park() } }
            cachedSequences.store(stages.reduce(0) { $0 + $1.cache.sequences.count }, ordering: .relaxed)
            cacheBytes.store(stages.reduce(0) { $0 + $1.cache.byteCount }, ordering: .relaxed)
            post(outcomes)
        }
    }

    private func post(_ outcomes: [Outcome]) {
        guard !outcomes.isEmpty else { return }
        queue.withLock { $0.outcomes += outcomes }
        _ = try? waker.send([1], dontWait: true)
    }

    private func perform(_ job: Job) -> [Outcome] {
        switch job {
        case let .load(file, a, what, cached):
            loads.async { [self] in
                let outcome = loadStage(file, a, what: what, cached: cached)
                if case let .loaded(_, report, stage?) = outcome { submit(.install(stage, report)) } else { submit(.relay(outcome)) }
            }
            return []
        case let .install(stage, report):
            guard let keep = stage.assign.keep else {
                held.withLock { $0[stage.assign.plan] = stage }
                return [.loaded(stage.assign, report, nil)]
            }
            // The caches go on from (a copy of) the stage of an earlier plan, which retires with
            // the new plan's first batch as usual: a batch of its plan still on its way touches
            // only positions after those kept.
            let started = ContinuousClock.now
            let sendOn: [Activations]
            do throws(WireErrorMessage) { sendOn = try stage.adopt(held.withLock { $0[keep.fromPlan] }, keep: keep) } catch {
                return [.loadFailed(error)]
            }
            held.withLock { $0[stage.assign.plan] = stage }
            let rebuilt = keep.rebuild.isEmpty ? "" : keep.rebuildFromLog ? ", layers \(keep.rebuild) rebuilt from the log" : ", layers \(keep.rebuild) to rebuild"
            log("kept the caches of \(keep.sequences.count) sequences from plan \(keep.fromPlan)\(rebuilt)\(sendOn.isEmpty ? "" : ", the log sent on") in \((ContinuousClock.now - started).milliseconds) ms")
            // (The socket thread routes the plan's output once it hears the stage is loaded.)
            return [.loaded(stage.assign, report, nil)] + sendOn.map { .output($0) }
        case let .run(messages):
            // Each run of messages of one plan on that plan's stage, in order.
            var outcomes: [Outcome] = []
            var start = messages.startIndex
            while start < messages.endIndex {
                let plan = UInt32(truncatingIfNeeded: messages[start].requestID >> 32)
                let end = messages[start...].firstIndex { UInt32(truncatingIfNeeded: $0.requestID >> 32) != plan } ?? messages.endIndex
                outcomes += run(Array(messages[start ..< end]), plan: plan)
                start = end
            }
            return outcomes
        case let .release(r):
            for stage in held.withLock({ Array($0.values) }) { for s in r.sequences { stage.release(s) } }
            return r.passOn ? [.passOn(r)] : []
        case let .retire(plan):
            held.withLock { $0 = $0.filter { $0.key >= plan } }
            return []
        case let .relay(outcome):
            return [outcome.forSocket]
        }
    }

    private func run(_ messages: [Activations], plan: UInt32) -> [Outcome] {
        guard let stage = held.withLock({ $0[plan] }) else {
            return messages.map { .failed(.init(code: .notAssigned, requestID: $0.requestID, message: "worker \(name) has no stage of plan \(plan)")) }
        }
        return stage.run(messages).map { result in
            switch result {
            case let .success(out): .output(out)
            case let .failure(error): .failed(error)
            }
        }
    }

    /// On the loader thread: checks and loads a stage.
    private func loadStage(_ file: GGUFFile, _ a: Assign, what: String, cached: Bool) -> Outcome {
        do throws(WireErrorMessage) {
            try verify(file, against: a, what: what)
        } catch {
            guard cached else { return .loadFailed(error) }
            log("\(error.message); streaming the stage again")
            try? FileManager.default.removeItem(atPath: file.path)
            return .streamInstead(a)
        }
        do throws(WireErrorMessage) { return try load(file, assign: a) } catch { return .loadFailed(error) }
    }

    private func log(_ message: String, _ level: Logger.Level = .info) {
        logger.log(level: level, "\(message)")
    }

    /// Checks the stage's tensors in `file` against the assignment's digests: the tensors of its
    /// layers (hashed once per file, then cached by path, size, modification time and inode),
    /// and no other part of the file. A difference is an error naming the tensor.
    private func verify(_ file: GGUFFile, against a: Assign, what: String) throws(WireErrorMessage) {
        let layers = Int(a.layerStart) ..< Int(a.layerEnd)
        let expected = Dictionary(a.tensorDigests.map { ($0.name, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        let names: [String]
        do { names = try StageFile.tensorNames(in: file, layers: layers) } catch {
            throw WireErrorMessage(code: .modelMismatch, message: "\(what) does not hold layers \(layers): \(error)")
        }
        if let missing = names.first(where: { expected[$0] == nil }) {
            throw WireErrorMessage(code: .modelMismatch, message: "the assignment carries no digest for \(missing) of layers \(layers)")
        }
        let started = ContinuousClock.now
        let found: [String: String]
        do { found = try ModelDigests.ofTensors(names, in: file, cache: digests) } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) cannot check \(what): \(error)")
        }
        for name in names where found[name] != ModelDigests.hex(expected[name]!) {
            throw WireErrorMessage(code: .modelMismatch, message:
                "\(what) differs from the coordinator's \(a.model.name) in tensor \(name): sha256 " +
                "\(found[name]?.prefix(16) ?? "?")… here, \(ModelDigests.hex(expected[name]!).prefix(16))… at the coordinator")
        }
        let seconds = (ContinuousClock.now - started).totalSeconds
        if seconds > 0.5 { log(String(format: "checked the %d tensors of layers \(layers) in %.1f s", names.count, seconds)) }
    }

    /// Checks the assignment fits in memory and loads the layers from the (mapped) file, beside
    /// the stage serving now. The same layers of the same model as a stage held keep its
    /// weights: only the KV cache starts afresh (a new plan replays every sequence). When the
    /// memory allows no second copy of the weights, the stages held are dropped first (their
    /// plan's batches then wait for the new plan).
    private func load(_ file: GGUFFile, assign a: Assign) throws(WireErrorMessage) -> Outcome {
        let started = ContinuousClock.now
        let layers = Int(a.layerStart) ..< Int(a.layerEnd)
        logger[metadataKey: "stage"] = "\(a.stageIndex)"
        do {
            let config = try LlamaConfig(gguf: file)
            guard config.nLayers == Int(a.layerCount), a.layerEnd <= a.layerCount else {
                throw WireErrorMessage(code: .modelMismatch, message: "the model has \(config.nLayers) layers; the assignment says \(a.layerCount)")
            }
            let weightBytes = try StageFile.weightBytes(in: file, layers: layers)
            let budget = try Stage.kvBudget(config: config, layers: layers.count, assign: a, weightBytes: weightBytes,
                                            memoryLimit: memoryLimit, limitSource: settings.maxMemory > 0 ? "--max-memory" : "its memory")
            let kept = held.withLock { $0.values.first { $0.canKeepWeights(for: a) } }
            // (A stage that keeps the caches of the last one needs it until it is installed.)
            if kept == nil, a.keep == nil, memoryLimit > 0, SystemInfo.residentBytes() + UInt64(weightBytes) > memoryLimit {
                held.withLock { $0.removeAll() }
                log("no room for the new layers beside the stage serving: it is dropped first")
            }
            let loaded: Stage
            if let kept {
                loaded = Stage(keeping: kept, assign: a, kvPages: budget.pages)
            } else {
                loaded = try Stage(file: file, assign: a, threads: settings.threads, precision: settings.precision,
                                   sharedCores: settings.sharedCores, kvPages: budget.pages)
            }
            let millis = UInt32(clamping: (ContinuousClock.now - started).milliseconds)
            let kvBytes = budget.pages * budget.shape.bytes
            log("stage \(a.stageIndex) of \(a.stageCount) ready: layers \(layers), \(weightBytes >> 20) MiB of weights" +
                (kept == nil ? "" : " (kept from the last plan)") +
                ", KV cache up to \(kvBytes >> 20) MiB (\(budget.pages) pages of \(budget.shape.rows) positions), \(millis) ms")
            return .loaded(a, LoadReport(status: .ready, weightBytes: UInt64(weightBytes), kvCacheBytes: UInt64(kvBytes),
                                         residentBytes: SystemInfo.residentBytes(), loadMilliseconds: millis,
                                         kvPages: UInt32(clamping: budget.pages), kvPageRows: UInt32(budget.shape.rows), plan: a.plan),
                           loaded)
        } catch let error as WireErrorMessage {
            throw error
        } catch {
            throw WireErrorMessage(code: .loadFailed, message: "worker \(name) could not load layers \(layers) from \(file.path): \(error)")
        }
    }
}
