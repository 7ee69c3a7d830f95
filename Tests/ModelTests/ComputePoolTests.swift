import StrataModel
import Foundation
import Synchronization
import Testing

struct ComputePoolTests {
    /// Every index is visited exactly once, whatever the thread count and granule.
    @Test(arguments: [1, 2, 3, 5])
    func sharesCoverTheRangeExactlyOnce(threads: Int) {
        let pool = ComputePool(threads: threads)
        for (count, granule) in [(0, 1), (1, 16), (17, 1), (576, 16), (1000, 16), (49152, 16)] {
            let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(count, 1))
            visits.initialize(repeating: 0)
            defer { visits.deallocate() }
            pool.run { tid in
                let r = pool.share(of: count, thread: tid, granule: granule)
                #expect(r.lowerBound % granule == 0 || r.isEmpty)
                for i in r { visits[i] += 1 }
            }
            #expect(visits.prefix(count).allSatisfy { $0 == 1 }, "count \(count), granule \(granule)")
        }
    }

    /// `run(units:)` runs every unit exactly once, over and over on the same pool.
    @Test(arguments: [1, 2, 3, 5])
    func unitsRunExactlyOnce(threads: Int) {
        let pool = ComputePool(threads: threads)
        for count in [0, 1, 2, 7, 64, 1000] {
            let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(count, 1))
            visits.initialize(repeating: 0)
            defer { visits.deallocate() }
            for _ in 0 ..< 20 { pool.run(units: count) { visits[$0] += 1 } }
            #expect(visits.prefix(count).allSatisfy { $0 == 20 }, "count \(count)")
        }
    }

    /// Units go to whichever thread is free: while one unit holds its thread, the other thread
    /// takes all the rest (an even split would leave half of them waiting behind the busy unit).
    @Test func unitsGoToTheFreeThreads() {
        let pool = ComputePool(threads: 2)
        let others = Atomic<Int>(0)
        let waitedOut = Atomic<Bool>(false)
        pool.run(units: 40) { unit in
            guard unit == 0 else { others.add(1, ordering: .sequentiallyConsistent); return }
            // Hold this thread until the other has done units 1 ... 39 (or give up after 20 s).
            let deadline = ContinuousClock.now + .seconds(20)
            while others.load(ordering: .sequentiallyConsistent) < 39 {
                if ContinuousClock.now > deadline { waitedOut.store(true, ordering: .relaxed); return }
                usleep(100)
            }
        }
        let gaveUp = waitedOut.load(ordering: .relaxed), done = others.load(ordering: .relaxed)
        #expect(!gaveUp)
        #expect(done == 39)
    }

    /// Pools made and dropped at once, before their threads even start, stop cleanly.
    @Test func poolsComeAndGo() {
        let total = Atomic<Int>(0)
        for _ in 0 ..< 200 {
            let pool = ComputePool(threads: 3)
            if Bool.random() { pool.run { _ in total.add(1, ordering: .relaxed) } }
        }
        #expect(total.load(ordering: .relaxed) % 3 == 0)
    }
}
