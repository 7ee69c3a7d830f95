import Foundation
import StrataModel
import Testing
import TestSupport

/// Writing with `GGUFWriter` and reading back with `GGUFFile` gives back every value and every
/// tensor byte.
@Suite struct GGUFWriterTests {
    /// One key per value type with its edge values, and arrays of each, nested arrays included.
    static let allValues: [(String, GGUFValue)] = [
        ("u8", .uint8(.max)), ("i8", .int8(.min)), ("u16", .uint16(.max)), ("i16", .int16(.min)),
        ("u32", .uint32(.max)), ("i32", .int32(.min)), ("u64", .uint64(.max)), ("i64", .int64(.min)),
        ("f32", .float32(-.infinity)), ("f32.tiny", .float32(.leastNonzeroMagnitude)),
        ("f64", .float64(.pi)), ("f64.max", .float64(.greatestFiniteMagnitude)),
        ("bool.t", .bool(true)), ("bool.f", .bool(false)),
        ("str", .string("héllo 🦙\nline two\u{0}nul")), ("str.empty", .string("")),
        ("arr.u8", .array(elementType: 0, [.uint8(0), .uint8(255)])),
        ("arr.i8", .array(elementType: 1, [.int8(-128), .int8(127)])),
        ("arr.u16", .array(elementType: 2, [.uint16(1)])),
        ("arr.i16", .array(elementType: 3, [.int16(-1)])),
        ("arr.u32", .array(elementType: 4, [.uint32(7), .uint32(8), .uint32(9)])),
        ("arr.i32", .array(elementType: 5, [.int32(-7)])),
        ("arr.f32", .array(elementType: 6, [.float32(0.5), .float32(-1e30)])),
        ("arr.bool", .array(elementType: 7, [.bool(true), .bool(false), .bool(true)])),
        ("arr.str", .array(elementType: 8, [.string("<s>"), .string(""), .string("▁the"), .string("\u{0}")])),
        ("arr.u64", .array(elementType: 10, [.uint64(.max)])),
        ("arr.i64", .array(elementType: 11, [.int64(.min), .int64(0)])),
        ("arr.f64", .array(elementType: 12, [.float64(1e-300)])),
        ("arr.empty", .array(elementType: 8, [])),
        ("arr.nested", .array(elementType: 9, [
            .array(elementType: 8, [.string("x"), .string("yz")]),
            .array(elementType: 5, [.int32(1), .int32(2), .int32(3)]),
            .array(elementType: 0, []),
        ])),
        ("arr.nested.empty", .array(elementType: 9, [])),
    ]

    /// Tensors of several types and ranks, filled with seeded random bytes.
    static func randomTensors() -> [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] {
        var rng = SplitMix64(seed: 42)
        let shapes: [(String, [Int], GGMLType)] = [
            ("f32.vec", [5], .f32), ("f16.mat", [3, 7], .f16), ("bf16.3d", [2, 3, 4], .bf16),
            ("q4_0", [64, 3], .q4_0), ("q4_1", [32, 1, 2], .q4_1), ("q8_0", [96, 2], .q8_0),
            ("q4_K", [256, 2], .q4_K), ("q5_K", [512], .q5_K), ("q6_K", [256, 1, 1, 3], .q6_K),
            ("f32.4d", [1, 2, 1, 3], .f32),
        ]
        return shapes.map { name, dims, type in
            let n = type.byteCount(elements: dims.reduce(1, *))!
            return (name, dims, type, (0 ..< n).map { _ in UInt8.random(in: 0 ... 255, using: &rng) })
        }
    }

    @Test(arguments: [UInt32(2), 3])
    func roundTripsEveryValueTypeAndTensor(version: UInt32) throws {
        var w = GGUFWriter(version: version)
        for (key, value) in Self.allValues { w.add(key: key, value) }
        let tensors = Self.randomTensors()
        for t in tensors { try w.addTensor(name: t.name, dims: t.dims, type: t.type, data: t.data) }

        let file = try loadGGUF(w.bytes())
        #expect(file.version == version)
        #expect(file.keys == Self.allValues.map(\.0))
        for (key, value) in Self.allValues { #expect(file.metadata[key] == value, "\(key)") }
        #expect(file.alignment == 32)
        #expect(file.dataOffset % 32 == 0)
        #expect(file.tensors.map(\.name) == tensors.map(\.name))
        #expect(file.tensors.map(\.offset) == w.tensorOffsets)
        for t in tensors {
            let info = try #require(file.tensorInfo(t.name))
            #expect(info.dims == t.dims)
            #expect(info.type == t.type)
            #expect(Array(file.data(of: info)) == t.data, "\(t.name)")
        }
    }

    /// The layout is ggml's: each tensor at the running sum of the padded sizes before it, the
    /// file ending with the last tensor's padding.
    @Test func layoutMatchesGGML() throws {
        let w = sampleWriter()
        #expect(w.tensorOffsets == [0, 32, 128])
        let bytes = w.bytes()
        let file = try loadGGUF(bytes)
        #expect(bytes.count == file.dataOffset + 128 + 32)
        #expect(bytes[(file.dataOffset + 144)...].allSatisfy { $0 == 0 })
        #expect(Array(bytes[0 ..< 4]) == Array("GGUF".utf8))
    }

    @Test(arguments: [UInt32(1), 8, 64, 4096])
    func honoursGeneralAlignment(alignment: UInt32) throws {
        var w = GGUFWriter()
        w.add(key: "general.alignment", .uint32(alignment))
        try w.addTensor(name: "a", dims: [3], values: [1, 2, 3])
        try w.addTensor(name: "b", dims: [5], values: [4, 5, 6, 7, 8])
        let file = try loadGGUF(w.bytes())
        #expect(file.alignment == Int(alignment))
        #expect(file.dataOffset % Int(alignment) == 0)
        let b = try #require(file.tensorInfo("b"))
        #expect(b.offset == (12 + Int(alignment) - 1) / Int(alignment) * Int(alignment))
        #expect(Array(file.data(of: b)) == [4, 5, 6, 7, 8].flatMap { (v: Float) in
            withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
        })
    }

    @Test func emptyFileHasHeaderOnly() throws {
        let bytes = GGUFWriter().bytes()
        #expect(bytes.count == 32)
        let file = try loadGGUF(bytes)
        #expect(file.keys.isEmpty && file.tensors.isEmpty)
    }

    @Test func writeToPathGivesTheSameBytes() throws {
        let w = sampleWriter()
        let path = temporaryGGUFPath("write")
        defer { unlink(path) }
        try w.write(to: path)
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == w.bytes())
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(name + ".partial") }.isEmpty)
        let file = try GGUFFile(path: path)
        #expect(try file.string("general.architecture") == "llama")
    }

    @Test func writeToUnwritablePathThrows() {
        #expect(throws: GGUFError.self) { try GGUFWriter().write(to: "/nonexistent-dir/x.gguf") }
    }

    @Test func addingAKeyAgainReplacesItInPlace() throws {
        var w = GGUFWriter()
        w.add(key: "a", .uint32(1))
        w.add(key: "b", .uint32(2))
        w.add(key: "a", .string("one"))
        #expect(w.keys == ["a", "b"])
        let file = try loadGGUF(w.bytes())
        #expect(file.keys == ["a", "b"])
        #expect(file.metadata["a"] == .string("one"))
    }

    @Test func addTensorRefusesWhatTheReaderWould() throws {
        var w = GGUFWriter()
        #expect(throws: Never.self) { try w.addTensor(name: "x", dims: [2], values: [1, 2]) }
        #expect(throws: GGUFError.duplicateTensor("x")) { try w.addTensor(name: "x", dims: [1], values: [1]) }
        #expect(throws: GGUFError.badDimensionCount(tensor: "e", nDims: 0)) { try w.addTensor(name: "e", dims: [], values: []) }
        #expect(throws: GGUFError.badDimensionCount(tensor: "f", nDims: 5)) {
            try w.addTensor(name: "f", dims: [1, 1, 1, 1, 1], values: [1])
        }
        #expect(throws: GGUFError.badDimension(tensor: "z", dims: [2, 0])) { try w.addTensor(name: "z", dims: [2, 0], values: []) }
        #expect(throws: GGUFError.sizeOverflow(tensor: "o")) {
            try w.addTensor(name: "o", dims: [1 << 32, 1 << 32], type: .f32, data: [])
        }
        #expect(throws: GGUFError.notBlockAligned(tensor: "q", type: "Q8_0", elements: 16, blockSize: 32)) {
            try w.addTensor(name: "q", dims: [16, 2], type: .q8_0, data: [UInt8](repeating: 0, count: 34))
        }
        #expect(throws: GGUFError.tensorDataSize(tensor: "s", expected: 12, got: 8)) {
            try w.addTensor(name: "s", dims: [3], type: .f32, data: [UInt8](repeating: 0, count: 8))
        }
        // None of the refused tensors was added.
        #expect(try loadGGUF(w.bytes()).tensors.map(\.name) == ["x"])
    }
}
