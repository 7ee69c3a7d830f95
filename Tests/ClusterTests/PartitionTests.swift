import StrataCoordinator
import Testing

struct PartitionTests {
    /// Every strategy covers 0..<layers exactly, in order, with at least one layer per stage,
    /// whatever the worker count.
    @Test(arguments: [1, 2, 3, 4, 7, 30])
    func stagesCoverEveryLayerOnce(workers: Int) throws {
        let layers = 30
        let bytes = [UInt64](repeating: 100, count: layers)
        for strategy in [PartitionStrategy.even, .memory] {
            for memory in [[UInt64](repeating: 10_000, count: workers), (0 ..< workers).map { UInt64(4000 + 997 * $0) }] {
                let ranges = try partitionLayers(strategy, layerBytes: bytes, memory: memory)
                #expect(ranges.count == workers)
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == layers)
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
                #expect(ranges.allSatisfy { !$0.isEmpty }, "\(strategy) \(memory): \(ranges)")
            }
        }
    }

    @Test func memoryWeightedFollowsTheMemoryOffered() throws {
        // One worker offers three times what the other does: it takes about three quarters.
        let ranges = try partitionLayers(.memory, layerBytes: [UInt64](repeating: 10, count: 32), memory: [3000, 1000])
        #expect(ranges == [0 ..< 24, 24 ..< 32])
        // Heavier layers count for more.
        let heavy = try partitionLayers(.memory, layerBytes: [40, 40, 10, 10, 10, 10], memory: [1000, 1000])
        #expect(heavy == [0 ..< 2, 2 ..< 6])
    }

    @Test func memoryWeightedRespectsASmallWorker() throws {
        let ranges = try partitionLayers(.memory, layerBytes: [UInt64](repeating: 10, count: 6), memory: [15, 100])
        #expect(ranges == [0 ..< 1, 1 ..< 6])
        // The total fits (30 of 30) but no contiguous cut does: refused, not overcommitted.
        #expect(throws: PartitionError.self) { try partitionLayers(.memory, layerBytes: [10, 10, 10], memory: [16, 14]) }
    }

    @Test func refusesWhatDoesNotFit() {
        #expect(throws: PartitionError.modelTooLarge(needs: 300, offers: 200)) {
            try partitionLayers(.memory, layerBytes: [100, 100, 100], memory: [100, 100])
        }
        #expect(throws: PartitionError.doesNotFit(stage: 0, layers: 0 ..< 2, needs: 200, offers: 150)) {
            try partitionLayers(.even, layerBytes: [100, 100, 100, 100], memory: [150, 1000])
        }
        #expect(throws: PartitionError.tooManyWorkers(workers: 3, layers: 2)) {
            try partitionLayers(.even, layerBytes: [1, 1], memory: [9, 9, 9])
        }
        let e = PartitionError.modelTooLarge(needs: 300 << 20, offers: 200 << 20)
        #expect(e.description.contains("300.0 MiB") && e.description.contains("200.0 MiB"))
    }

    @Test func explicitRangesAreParsedAndChecked() throws {
        let s = try PartitionStrategy(parsing: "explicit:0-9,10-19,20-29")
        #expect(s == .explicit([0 ..< 10, 10 ..< 20, 20 ..< 30]))
        #expect(s.description == "explicit:0-9,10-19,20-29")
        let bytes = [UInt64](repeating: 1, count: 30)
        #expect(try partitionLayers(s, layerBytes: bytes, memory: [99, 99, 99]) == [0 ..< 10, 10 ..< 20, 20 ..< 30])
        // A gap, an overlap, a short cover, the wrong count.
        for bad in ["explicit:0-9,11-29,", "explicit:0-9,9-29", "explicit:0-9,10-28", "explicit:0-29"] {
            let strategy = try PartitionStrategy(parsing: bad)
            #expect(throws: PartitionError.self) { try partitionLayers(strategy, layerBytes: bytes, memory: [99, 99]) }
        }
        for bad in ["explicit:", "explicit:a-b", "explicit:5-3", "fastest"] {
            #expect(throws: PartitionError.self) { try PartitionStrategy(parsing: bad) }
        }
    }
}
