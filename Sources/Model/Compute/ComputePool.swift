import Foundation
import Synchronization

/// A fixed set of threads that run one data-parallel job at a time and meet at a spin barrier.
///
/// Matrix products in decode take a few microseconds each; waking threads through Dispatch costs
/// more than that (see shared/docs/FINDINGS.md), so the workers stay awake, spinning on a
/// generation counter, and block on a condition variable only after `idleSpin` without work.
/// One process keeps the default (a few milliseconds, the gap between tokens); a pipeline
/// stage shares the cores with other stages that run while it waits, so it spins only briefly.
public final class ComputePool: @unchecked Sendable {
    public let threadCount: Int
    private let state: State

    /// What the caller and the workers share. The workers hold it, not the pool, so the pool can
    /// go away (stopping them) whenever its owner lets go of it.
    private final class State: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        /// Set by `park()`: idle workers block at once instead of spinning.
        let parked = Atomic<Bool>(false)
        /// Workers blocked in `wait`; the caller signals only when there are some.
        let sleepers = Atomic<Int>(0)
        /// The next unit of a `run(units:)` job to hand out.
        let nextUnit = Atomic<Int>(0)
        let idleSpinMicroseconds: UInt64
        let lock = NSCondition()
        /// The job of the current generation; written only by the caller while no worker reads it.
        nonisolated(unsafe) var job: ((Int) -> Void)?

        init(idleSpinMicroseconds: UInt64) { self.idleSpinMicroseconds = idleSpinMicroseconds }

        /// Publishes a new generation and wakes the workers that went to sleep.
        func advance() {
            // Sequentially consistent on both sides (here and in `workerLoop`): either the
            // caller sees the sleeper, or the sleeper sees the new generation.
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                lock.lock()
                lock.broadcast()
                lock.unlock()
            }
        }
    }

    /// `idleSpin`: how long an idle worker spins before it blocks.
    public init(threads: Int, idleSpin: Duration = .milliseconds(5)) {
        threadCount = max(1, threads)
        let micros = UInt64(idleSpin.microseconds)
        let state = State(idleSpinMicroseconds: micros)
        self.state = state
        for index in 1 ..< threadCount {
            let t = Thread { Self.workerLoop(state, index: index) }
            t.name = "strata-compute-\(index)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    deinit {
        state.stopping.store(true, ordering: .releasing)
        state.advance()
        while state.pending.load(ordering: .acquiring) > -(threadCount - 1) { sched_yield() }
    }

    /// Runs `body(threadIndex)` on every thread of the pool, the caller being thread 0, and
    /// returns when all have finished.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 { body(0); return }
        state.parked.store(false, ordering: .relaxed)
        withoutActuallyEscaping(body) { body in
            state.job = body
            state.pending.store(threadCount - 1, ordering: .releasing)
            state.advance()
            body(0)
            var spins = 0
            while state.pending.load(ordering: .acquiring) > 0 {
                spins += 1
                // When the machine is oversubscribed a helper may be waiting for this very
                // core: yield now and then (cheap when nothing else is runnable).
                if spins & 0x3FFF == 0 { sched_yield() }
            }
            state.job = nil
        }
    }

    /// Runs `body(unit)` for every unit in 0 ..< count, handed out to the threads as they come
    /// free: a thread takes the next unit when it has finished one. A thread that loses its core
    /// for a while (other processes, a busy neighbour on a shared host, a slower core) then costs
    /// the others at most one unit of waiting at the barrier, where an even split would make them
    /// wait for its whole share.
    public func run(units count: Int, _ body: (Int) -> Void) {
        if threadCount == 1 || count <= 1 {
            for unit in 0 ..< count { body(unit) }
            return
        }
        let state = state
        // Published to the workers with the new generation (`advance` is sequentially consistent).
        state.nextUnit.store(0, ordering: .relaxed)
        run { _ in
            while case let unit = state.nextUnit.wrappingAdd(1, ordering: .relaxed).oldValue, unit < count { body(unit) }
        }
    }

    /// Tells the idle workers to block now rather than spin: the caller knows no job is coming
    /// soon (a pipeline stage that just passed its batch on), and other processes need the cores.
    /// The next `run` wakes them.
    public func park() {
        state.parked.store(true, ordering: .relaxed)
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// The half-open share `[start, end)` of `0..<count` that thread `index` takes, cut at
    /// multiples of `granule` so that kernels see whole tiles.
    public func share(of count: Int, thread index: Int, granule: Int = 1) -> Range<Int> {
        let units = (count + granule - 1) / granule
        let lo = units * index / threadCount * granule
        let hi = units * (index + 1) / threadCount * granule
        return min(lo, count) ..< min(hi, count)
    }

    private static func workerLoop(_ state: State, index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var idleSince: UInt64 = 0
            var current = state.generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins & 0x3FF == 0 {
                    // Spin through the short gaps between steps of a forward pass, yielding
                    // now and then; once no job has come for `idleSpin`, block until one does.
                    let now = monotonicMicroseconds()
                    if idleSince == 0 { idleSince = now }
                    if now - idleSince >= state.idleSpinMicroseconds || state.parked.load(ordering: .relaxed) {
                        state.lock.lock()
                        state.sleepers.add(1, ordering: .sequentiallyConsistent)
                        while state.generation.load(ordering: .sequentiallyConsistent) == seen { state.lock.wait() }
                        state.sleepers.subtract(1, ordering: .relaxed)
                        state.lock.unlock()
                    } else if spins & 0x3FFF == 0 {
                        sched_yield()
                    }
                }
                current = state.generation.load(ordering: .acquiring)
            }
            seen = current
            if state.stopping.load(ordering: .acquiring) {
                state.pending.subtract(1, ordering: .releasing)
                return
            }
            state.job?(index)
            state.pending.subtract(1, ordering: .releasing)
        }
    }
}
