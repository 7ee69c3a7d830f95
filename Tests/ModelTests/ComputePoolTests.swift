import StrataModel
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
