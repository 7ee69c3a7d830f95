import Foundation
import StrataModel
import Testing

/// One broken file per failure kind (after llama.cpp's tests/test-gguf.cpp): each starts from the
/// valid `sampleWriter()` file, or a writer told to write the fault, and must be refused with that
/// kind's `GGUFError`, naming the key or tensor concerned.
@Suite struct GGUFBrokenFileTests {
    let valid = sampleWriter().bytes()

    /// `valid` with `change` applied.
    func broken(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var b = valid
        change(&b)
        return b
    }

    @Test func sampleIsValid() throws {
        let file = try loadGGUF(valid)
        #expect(file.tensors.map(\.name) == ["t.a", "t.b", "t.c"])
        #expect(file.keys.count == 17)
    }

    // MARK: Header

    @Test func emptyFile() {
        #expect(loadError([]) == .truncated(what: "header", offset: 0, needed: 24, available: 0))
    }

    @Test func shorterThanMagic() {
        #expect(loadError([0x47, 0x47, 0x55]) == .truncated(what: "magic", offset: 0, needed: 4, available: 3))
    }

    @Test func badMagic() {
        #expect(loadError(broken { $0.replaceSubrange(0 ..< 4, with: Array("GGML".utf8)) }) == .badMagic(found: 0x4C4D_4747))
        // A big-endian GGUF's magic as a little-endian reader sees it.
        #expect(loadError(broken { $0.put(UInt32(0x4747_5546), at: 0) }) == .badMagic(found: 0x4747_5546))
    }

    @Test(arguments: [UInt32(0), 1, 4, .max])
    func unsupportedVersion(version: UInt32) {
        #expect(loadError(broken { $0.put(version, at: 4) }) == .unsupportedVersion(version))
    }

    @Test(arguments: [UInt64(1) << 20, 1 << 32, .max])
    func hugeTensorCount(count: UInt64) throws {
        let error = try #require(loadError(broken { $0.put(count, at: 8) }))
        guard case let .countTooLarge(what, found, limit) = error else { Issue.record("\(error)"); return }
        #expect(what == "tensor" && found == count && limit < count)
    }

    @Test(arguments: [UInt64(1) << 32, .max])
    func hugeKeyValueCount(count: UInt64) throws {
        let error = try #require(loadError(broken { $0.put(count, at: 16) }))
        guard case let .countTooLarge(what, found, limit) = error else { Issue.record("\(error)"); return }
        #expect(what == "metadata" && found == count && limit < count)
    }

    /// A count one too many runs the reader into the next section; it must still fail cleanly.
    @Test func countsOneTooMany() {
        #expect(loadError(broken { $0.put(UInt64(18), at: 16) }) != nil)
        #expect(loadError(broken { $0.put(UInt64(4), at: 8) }) != nil)
    }

    // MARK: Metadata

    @Test func hugeKeyLength() throws {
        let error = try #require(loadError(broken { $0.put(UInt64.max, at: $0.offset(of: "k.u8")) }))
        guard case let .truncated(what, _, needed, _) = error else { Issue.record("\(error)"); return }
        #expect(what == "metadata key #1" && needed == Int.max)
    }

    @Test(arguments: [UInt64(1) << 20, .max])
    func hugeStringLength(length: UInt64) throws {
        let error = try #require(loadError(broken { $0.put(length, at: $0.offset(after: "k.str") + 4) }))
        guard case let .truncated(what, _, _, _) = error else { Issue.record("\(error)"); return }
        #expect(what == "value of 'k.str'")
    }

    @Test func hugeStringInArray() throws {
        // The first element of k.arr.str: after type, element type and count.
        let error = try #require(loadError(broken { $0.put(UInt64.max, at: $0.offset(after: "k.arr.str") + 16) }))
        guard case let .truncated(what, _, _, _) = error else { Issue.record("\(error)"); return }
        #expect(what == "value of 'k.arr.str'")
    }

    @Test(arguments: ["k.arr.u8", "k.arr.str", "k.arr.bool", "k.arr.nested"], [UInt64(1) << 32, .max])
    func hugeArrayLength(key: String, length: UInt64) throws {
        let error = try #require(loadError(broken { $0.put(length, at: $0.offset(after: key) + 8) }))
        guard case let .countTooLarge(what, count, _) = error else { Issue.record("\(error)"); return }
        #expect(what == "array '\(key)' element" && count == length)
    }

    /// An array longer than any real vocabulary, backed by enough bytes in the file, is still
    /// refused: each element would cost ~24 bytes of memory.
    @Test func arrayLongerThanTheCapIsRefused() throws {
        var w = GGUFWriter()
        let n = Int(GGUFFile.maxArrayLength) + 1
        w.add(key: "k.big", .array(elementType: 0, []))
        var bytes = w.bytes()
        // Point the (empty) array's count (after the key, its value type and element type) past
        // the cap, and append that many bytes.
        let key = Array("k.big".utf8)
        let at = try #require((0 ... bytes.count - key.count).first { Array(bytes[$0 ..< $0 + key.count]) == key }) + key.count + 8
        withUnsafeBytes(of: UInt64(n).littleEndian) { for (i, b) in $0.enumerated() { bytes[at + i] = b } }
        bytes += [UInt8](repeating: 1, count: n)
        let error = loadError(bytes)
        guard case let .countTooLarge(what, count, limit) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(what == "array 'k.big' element" && count == UInt64(n) && limit == GGUFFile.maxArrayLength)
    }

    @Test(arguments: [UInt32(13), 99, .max])
    func unknownValueType(type: UInt32) {
        #expect(loadError(broken { $0.put(type, at: $0.offset(after: "k.u32")) }) == .unknownValueType(key: "k.u32", type: type))
    }

    @Test(arguments: [UInt32(13), .max])
    func unknownArrayElementType(type: UInt32) {
        #expect(loadError(broken { $0.put(type, at: $0.offset(after: "k.arr.u8") + 4) })
            == .unknownValueType(key: "k.arr.u8", type: type))
    }

    @Test func unknownNestedArrayElementType() {
        // The inner arrays of k.arr.nested: outer type 9, element type 9, count 2, then the first
        // inner array's element type.
        #expect(loadError(broken { $0.put(UInt32(77), at: $0.offset(after: "k.arr.nested") + 16) })
            == .unknownValueType(key: "k.arr.nested", type: 77))
    }

    @Test func nestingTooDeep() {
        var w = GGUFWriter()
        w.add(key: "ok.depth2", .array(elementType: 9, [.array(elementType: 0, [.uint8(1)])]))
        w.add(key: "deep", .array(elementType: 9, [.array(elementType: 9, [.array(elementType: 0, [.uint8(1)])])]))
        #expect(loadError(w.bytes()) == .nestingTooDeep(key: "deep"))
    }

    @Test func duplicateKey() {
        // Rename k.i32 (after k.u32) to k.u32.
        let b = broken { b in b.replaceSubrange(b.offset(after: "k.i32") - 5 ..< b.offset(after: "k.i32"), with: Array("k.u32".utf8)) }
        #expect(loadError(b) == .duplicateKey("k.u32"))
    }

    @Test func boolNotZeroOrOne() throws {
        let error = try #require(loadError(broken { $0[$0.offset(after: "k.bool") + 4] = 2 }))
        guard case .invalidValue(key: "k.bool", _) = error else { Issue.record("\(error)"); return }
        let inArray = try #require(loadError(broken { $0[$0.offset(after: "k.arr.bool") + 17] = 0xFF }))
        guard case .invalidValue(key: "k.arr.bool", _) = inArray else { Issue.record("\(inArray)"); return }
    }

    @Test(arguments: [UInt32(0), 3, 48, 1 << 21])
    func alignmentNotAPowerOfTwoOrTooLarge(alignment: UInt32) throws {
        var w = sampleWriter()
        w.add(key: "general.alignment", .uint32(alignment))
        #expect(loadError(w.bytes()) == .badAlignment(UInt64(alignment)))
    }

    @Test(arguments: [GGUFValue.uint64(32), .int32(32), .uint16(32), .string("32")])
    func alignmentOfWrongType(value: GGUFValue) {
        var w = sampleWriter()
        w.add(key: "general.alignment", value)
        #expect(loadError(w.bytes()) == .wrongValueType(key: "general.alignment", expected: "uint32", found: value.typeName))
    }

    // MARK: Tensor table

    @Test func duplicateTensorName() {
        let b = broken { b in b.replaceSubrange(b.offset(after: "t.b") - 3 ..< b.offset(after: "t.b"), with: Array("t.a".utf8)) }
        #expect(loadError(b) == .duplicateTensor("t.a"))
    }

    @Test(arguments: [UInt32(0), 5, .max])
    func badDimensionCount(nDims: UInt32) {
        #expect(loadError(broken { $0.put(nDims, at: $0.tensorFields("t.b").nDims) }) == .badDimensionCount(tensor: "t.b", nDims: nDims))
    }

    @Test(arguments: [[Int64(0), 2], [4, 0], [-1, 2], [4, .min]])
    func zeroOrNegativeDimension(dims: [Int64]) {
        let b = broken { b in
            let at = b.tensorFields("t.a").dims
            b.put(dims[0], at: at)
            b.put(dims[1], at: at + 8)
        }
        #expect(loadError(b) == .badDimension(tensor: "t.a", dims: dims))
    }

    @Test(arguments: [[Int64(1) << 32, 1 << 32], [.max, 2], [1 << 62, 1]])
    func sizeOverflows(dims: [Int64]) {
        // [2^62, 1] f32 has 2^62 elements (fine) but 2^64 bytes.
        let b = broken { b in
            let at = b.tensorFields("t.a").dims
            b.put(dims[0], at: at)
            b.put(dims[1], at: at + 8)
        }
        #expect(loadError(b) == .sizeOverflow(tensor: "t.a"))
    }

    @Test(arguments: [UInt32(4), 5, 40, 99, .max])
    func unknownTensorType(type: UInt32) {
        #expect(loadError(broken { $0.put(type, at: $0.tensorFields("t.a").type) }) == .unknownTensorType(tensor: "t.a", type: type))
    }

    @Test(arguments: [(UInt32(11), "Q3_K"), (16, "IQ2_XXS"), (10, "Q2_K"), (28, "F64"), (9, "Q8_1"), (15, "Q8_K")])
    func unsupportedTensorType(type: UInt32, name: String) {
        #expect(loadError(broken { $0.put(type, at: $0.tensorFields("t.a").type) }) == .unsupportedTensorType(tensor: "t.a", type: name))
    }

    @Test func rowNotAMultipleOfTheBlockSize() {
        // t.b is q8_0 [32, 2]: make it [16, 4] (same element count), or q4_K (block of 256).
        let halfRows = broken { b in
            let at = b.tensorFields("t.b").dims
            b.put(UInt64(16), at: at)
            b.put(UInt64(4), at: at + 8)
        }
        #expect(loadError(halfRows) == .notBlockAligned(tensor: "t.b", type: "Q8_0", elements: 16, blockSize: 32))
        let kQuant = broken { $0.put(GGMLType.q4_K.rawValue, at: $0.tensorFields("t.b").type) }
        #expect(loadError(kQuant) == .notBlockAligned(tensor: "t.b", type: "Q4_K", elements: 32, blockSize: 256))
    }

    @Test(arguments: [UInt64(33), 48, 1])
    func misalignedTensorOffset(offset: UInt64) {
        #expect(loadError(broken { $0.put(offset, at: $0.tensorFields("t.b").offset) })
            == .misalignedTensor(tensor: "t.b", offset: offset, alignment: 32))
    }

    @Test func misalignedForALargerAlignment() throws {
        var w = sampleWriter()
        w.add(key: "general.alignment", .uint32(64))
        var b = w.bytes()
        #expect(try loadGGUF(b).tensorInfo("t.b")?.offset == 64)
        b.put(UInt64(32), at: b.tensorFields("t.b").offset)
        #expect(loadError(b) == .misalignedTensor(tensor: "t.b", offset: 32, alignment: 64))
    }

    // MARK: Data section

    @Test func tensorDataPastTheEnd() throws {
        let dataSize = valid.count - (try loadGGUF(valid)).dataOffset  // 160
        let far = broken { $0.put(UInt64(1) << 40, at: $0.tensorFields("t.c").offset) }
        #expect(loadError(far) == .tensorOutOfFile(tensor: "t.c", offset: 1 << 40, size: 16, dataSize: dataSize))
        let justPast = broken { $0.put(UInt64(160), at: $0.tensorFields("t.c").offset) }
        #expect(loadError(justPast) == .tensorOutOfFile(tensor: "t.c", offset: 160, size: 16, dataSize: dataSize))
        // Cut one byte of t.c's data (its 16 bytes of padding and one more).
        #expect(loadError(Array(valid.dropLast(17))) == .tensorOutOfFile(tensor: "t.c", offset: 128, size: 16, dataSize: dataSize - 17))
        // The tensor table ends the file: no data section at all.
        let table = valid.count - dataSize
        #expect(loadError(Array(valid[..<table])) == .tensorOutOfFile(tensor: "t.a", offset: 0, size: 32, dataSize: 0))
    }

    @Test func tensorOffsetBeyondInt() {
        // Aligned, but larger than any Int.
        let b = broken { $0.put(UInt64.max - 31, at: $0.tensorFields("t.c").offset) }
        #expect(loadError(b) == .sizeOverflow(tensor: "t.c"))
    }

    @Test func bigTensorInASmallFile() {
        // 2^40 elements of f16: no overflow, but far more than the file holds.
        let b = broken { b in
            let at = b.tensorFields("t.c").dims
            b.put(UInt64(1) << 40, at: at)
        }
        #expect(loadError(b) == .tensorOutOfFile(tensor: "t.c", offset: 128, size: 1 << 41, dataSize: 160))
    }

    @Test func overlappingTensors() {
        // t.b holds bytes 32 ..< 100; put t.c at 64.
        #expect(loadError(broken { $0.put(UInt64(64), at: $0.tensorFields("t.c").offset) }) == .overlappingTensors("t.b", "t.c"))
        // Two tensors at the same offset.
        let same = broken { $0.put(UInt64(32), at: $0.tensorFields("t.c").offset) }
        #expect(loadError(same).map { if case .overlappingTensors = $0 { true } else { false } } == true)
    }

    @Test func outOfOrderTensorsWithoutOverlapLoad() throws {
        // The reader accepts any order as long as tensors do not overlap: swap t.a and t.c.
        let b = broken { b in
            b.put(UInt64(128), at: b.tensorFields("t.a").offset)
            b.put(UInt64(0), at: b.tensorFields("t.c").offset)
            b.put(UInt64(1), at: b.tensorFields("t.a").dims + 8)  // t.a becomes [4, 1]: 16 bytes
        }
        let file = try loadGGUF(b)
        #expect(file.tensorInfo("t.a")?.offset == 128)
    }

    // MARK: Paths that are not GGUF files

    @Test func missingFile() throws {
        let error = try #require(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/strata.gguf") }
        guard case .cannotOpen(path: "/nonexistent/strata.gguf", _) = error else { Issue.record("\(error)"); return }
    }

    @Test func directory() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let error = try #require(throws: GGUFError.self) { try GGUFFile(path: dir) }
        #expect(error == .cannotOpen(path: dir, reason: "not a regular file"))
    }

    /// Opening a FIFO must not wait for a writer.
    @Test func fifoIsRefusedWithoutBlocking() throws {
        let path = temporaryGGUFPath("fifo")
        try #require(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        let error = try #require(throws: GGUFError.self) { try GGUFFile(path: path) }
        #expect(error == .cannotOpen(path: path, reason: "not a regular file"))
    }
}
