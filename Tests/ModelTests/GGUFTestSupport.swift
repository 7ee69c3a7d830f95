import Foundation
import StrataModel
import Testing

// Helpers for the GGUF tests: a small valid file, opening bytes through a temporary file, and
// patching fields of a file in place by finding the string that precedes them.

/// A fresh path in the temporary directory.
func temporaryGGUFPath(_ tag: String = "t") -> String {
    FileManager.default.temporaryDirectory
        .appendingPathComponent("strata-gguf-\(tag)-\(UUID().uuidString).gguf").path
}

/// Writes `bytes` to a temporary file and opens it (the file is unlinked at once; the mapping
/// keeps it alive).
func loadGGUF(_ bytes: [UInt8]) throws(GGUFError) -> GGUFFile {
    let path = temporaryGGUFPath()
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        fatalError("cannot create \(path)")
    }
    defer { unlink(path) }
    return try GGUFFile(path: path)
}

/// The error opening `bytes` throws, or nil when they open.
func loadError(_ bytes: [UInt8]) -> GGUFError? {
    do throws(GGUFError) {
        _ = try loadGGUF(bytes)
        return nil
    } catch {
        return error
    }
}

/// A small valid file: one key of every value type, arrays of numbers, strings, bools and arrays,
/// and three tensors, the last followed by padding.
///
/// Tensors: `t.a` f32 [4, 2] (32 bytes at 0), `t.b` q8_0 [32, 2] (68 bytes at 32),
/// `t.c` f16 [8] (16 bytes at 128, then 16 bytes of padding).
func sampleWriter(version: UInt32 = 3) -> GGUFWriter {
    var w = GGUFWriter(version: version)
    w.add(key: "general.architecture", .string("llama"))
    w.add(key: "k.u8", .uint8(200))
    w.add(key: "k.i8", .int8(-5))
    w.add(key: "k.u16", .uint16(60000))
    w.add(key: "k.i16", .int16(-300))
    w.add(key: "k.u32", .uint32(4_000_000_000))
    w.add(key: "k.i32", .int32(-70000))
    w.add(key: "k.u64", .uint64(1 << 40))
    w.add(key: "k.i64", .int64(-(1 << 40)))
    w.add(key: "k.f32", .float32(1.5))
    w.add(key: "k.f64", .float64(-2.25))
    w.add(key: "k.bool", .bool(true))
    w.add(key: "k.str", .string("hello"))
    w.add(key: "k.arr.u8", .array(elementType: 0, [.uint8(1), .uint8(2), .uint8(3)]))
    w.add(key: "k.arr.str", .array(elementType: 8, [.string("a"), .string("bc"), .string("")]))
    w.add(key: "k.arr.bool", .array(elementType: 7, [.bool(false), .bool(true)]))
    w.add(key: "k.arr.nested", .array(elementType: 9, [
        .array(elementType: 5, [.int32(1), .int32(2)]),
        .array(elementType: 5, [.int32(3)]),
    ]))
    do throws(GGUFError) {
        try w.addTensor(name: "t.a", dims: [4, 2], values: (0 ..< 8).map(Float.init))
        try w.addTensor(name: "t.b", dims: [32, 2], type: .q8_0, data: (0 ..< 68).map { UInt8($0) })
        try w.addTensor(name: "t.c", dims: [8], type: .f16, data: (0 ..< 16).map { UInt8(255 - $0) })
    } catch {
        fatalError("\(error)")
    }
    return w
}

extension Array where Element == UInt8 {
    /// Offset just past the first occurrence of `s` as a GGUF string (u64 length, then bytes):
    /// for a key, where its type code starts; for a tensor name, where its dimension count starts.
    func offset(after s: String) -> Int {
        var needle: [UInt8] = []
        Swift.withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { needle += $0 }
        needle += s.utf8
        for i in 0 ... (count - needle.count) where self[i ..< i + needle.count].elementsEqual(needle) {
            return i + needle.count
        }
        fatalError("'\(s)' not in file")
    }

    /// Offset of the u64 length of the first GGUF string `s`.
    func offset(of s: String) -> Int { offset(after: s) - s.utf8.count - 8 }

    mutating func put<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        Swift.withUnsafeBytes(of: v.littleEndian) { raw in
            for (i, b) in raw.enumerated() { self[offset + i] = b }
        }
    }

    func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0 ..< MemoryLayout<T>.size { v |= T(truncatingIfNeeded: self[offset + i]) << (8 * i) }
        return v
    }

    /// Where the fields of tensor `name`'s table entry lie.
    func tensorFields(_ name: String) -> (nDims: Int, dims: Int, type: Int, offset: Int) {
        let p = offset(after: name)
        let n = Int(get(UInt32.self, at: p))
        return (p, p + 4, p + 4 + 8 * n, p + 8 + 8 * n)
    }
}

