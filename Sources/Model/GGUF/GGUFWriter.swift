#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a GGUF file (version 3 by default, or 2) in memory or on disk.
///
/// Layout, as ggml writes it: header, metadata in the order added, the tensor table in the order
/// added, zero padding to the alignment, then each tensor's data at an offset that is a multiple
/// of the alignment, each followed by zero padding to the alignment (the last one too).
/// The alignment is `general.alignment` when that is a non-zero `uint32`, else 32; it should be a
/// power of two (`GGUFFile` refuses any other).
///
/// ```swift
/// var w = GGUFWriter()
/// w.add(key: "general.architecture", .string("llama"))
/// try w.addTensor(name: "token_embd.weight", dims: [dim, vocabSize], values: embedding)
/// try w.write(to: path)
/// ```
public struct GGUFWriter: Sendable {
    /// Hands bytes to the writer; a producer calls it as often as it likes, in order.
    public typealias Emit = (UnsafeRawBufferPointer) -> Void
    /// Makes a tensor's bytes at write time, a chunk at a time, so that a file larger than memory
    /// can be written without holding it.
    public typealias Producer = @Sendable (_ emit: Emit) -> Void

    private enum Payload: Sendable {
        case bytes([UInt8])
        case produced(Producer)
        /// The tensor's bytes lie at `offset` of the file at `path`.
        case file(path: String, offset: Int)
    }

    private struct Tensor: Sendable {
        let name: String
        let dims: [Int]
        let type: GGMLType
        let byteCount: Int
        let payload: Payload
    }

    /// 2 or 3. The two differ only in the number: both have 64-bit counts and lengths.
    public let version: UInt32
    /// Metadata keys in the order they will be written.
    public private(set) var keys: [String] = []
    private var metadata: [String: GGUFValue] = [:]
    private var tensors: [Tensor] = []
    private var tensorNames: Set<String> = []

    public init(version: UInt32 = 3) {
        guard version == 2 || version == 3 else { fatalError("GGUFWriter: version \(version); expected 2 or 3") }
        self.version = version
    }

    /// Sets a metadata value; setting a key again replaces its value and keeps its place.
    ///
    /// An array's items must all have its `elementType` (a programmer error otherwise, as GGUF
    /// writes the type once per array).
    public mutating func add(key: String, _ value: GGUFValue) {
        Self.checkArrayTypes(value, key: key)
        if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Adds a tensor. `dims` are innermost first (a matrix of `rows` rows of `cols` elements has
    /// `dims == [cols, rows]`), `data` its bytes in ggml's layout for `type`.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [UInt8]) throws(GGUFError) {
        let expected = try checkedByteCount(name: name, dims: dims, type: type)
        guard data.count == expected else { throw .tensorDataSize(tensor: name, expected: expected, got: data.count) }
        tensorNames.insert(name)
        tensors.append(Tensor(name: name, dims: dims, type: type, byteCount: expected, payload: .bytes(data)))
    }

    /// Adds a tensor whose bytes `producer` emits while the file is written (exactly the size
    /// `dims` and `type` give; writing fails otherwise).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, producer: @escaping Producer) throws(GGUFError) {
        let expected = try checkedByteCount(name: name, dims: dims, type: type)
        tensorNames.insert(name)
        tensors.append(Tensor(name: name, dims: dims, type: type, byteCount: expected, payload: .produced(producer)))
    }

    /// Adds a tensor whose bytes are copied from the file at `path`, starting at `offset`, only
    /// when the file is written or streamed, with plain reads (never through a mapping, so they
    /// do not count against this process's resident memory).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, copyingFrom path: String, offset: Int) throws(GGUFError) {
        let expected = try checkedByteCount(name: name, dims: dims, type: type)
        tensorNames.insert(name)
        tensors.append(Tensor(name: name, dims: dims, type: type, byteCount: expected, payload: .file(path: path, offset: offset)))
    }

    /// The byte size of a new tensor, after checking its name and shape.
    private func checkedByteCount(name: String, dims: [Int], type: GGMLType) throws(GGUFError) -> Int {
        guard !tensorNames.contains(name) else { throw .duplicateTensor(name) }
        guard (1 ... 4).contains(dims.count) else { throw .badDimensionCount(tensor: name, nDims: UInt32(dims.count)) }
        guard dims.allSatisfy({ $0 >= 1 }) else { throw .badDimension(tensor: name, dims: dims.map { Int64($0) }) }
        var elements = 1
        for d in dims {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .sizeOverflow(tensor: name) }
            elements = p
        }
        guard dims[0] % type.blockSize == 0 else {
            throw .notBlockAligned(tensor: name, type: type.description, elements: Int64(dims[0]), blockSize: type.blockSize)
        }
        guard let expected = type.byteCount(elements: elements) else { throw .sizeOverflow(tensor: name) }
        return expected
    }

    /// Adds an f32 tensor from its values (innermost dimension varying fastest).
    public mutating func addTensor(name: String, dims: [Int], values: [Float]) throws(GGUFError) {
        var data: [UInt8] = []
        data.reserveCapacity(values.count * 4)
        for v in values { Self.append(v.bitPattern, to: &data) }
        try addTensor(name: name, dims: dims, type: .f32, data: data)
    }

    /// The alignment the file will use: `general.alignment` when it is a non-zero `uint32`.
    public var alignment: Int {
        if case let .uint32(a)? = metadata["general.alignment"], a > 0 { Int(a) } else { GGUFFile.defaultAlignment }
    }

    /// Offsets of each tensor's data from the start of the data section, in the order added.
    public var tensorOffsets: [Int] {
        var offsets: [Int] = []
        var next = 0
        for t in tensors {
            offsets.append(next)
            next = Self.padded(next + t.byteCount, alignment)
        }
        return offsets
    }

    /// The whole file, in memory. A producer that emits the wrong number of bytes is a
    /// programmer error here (`write(to:)` reports it as an error).
    public func bytes() -> [UInt8] {
        var out = headerBytes()
        for t in tensors {
            let start = out.count
            switch t.payload {
            case let .bytes(data): out += data
            case let .produced(producer): producer { out.append(contentsOf: $0) }
            case let .file(path, offset):
                do throws(GGUFError) {
                    try Self.read(path, offset: offset, count: t.byteCount) { out.append(contentsOf: $0) }
                } catch {
                    preconditionFailure("GGUFWriter: tensor '\(t.name)': \(error)")
                }
            }
            precondition(out.count - start == t.byteCount,
                         "GGUFWriter: tensor '\(t.name)' produced \(out.count - start) bytes; expected \(t.byteCount)")
            out += [UInt8](repeating: 0, count: Self.padded(t.byteCount, alignment) - t.byteCount)
        }
        return out
    }

    /// Writes the file to `path`, through a temporary file beside it renamed into place, so that
    /// no reader ever sees half a file.
    public func write(to path: String) throws(GGUFError) {
        let temp = path + ".partial-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: temp, reason: String(cString: strerror(errno))) }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(temp) }
        }
        try Self.writeAll(fd, headerBytes(), path: temp)
        for t in tensors {
            switch t.payload {
            case let .bytes(data):
                try Self.writeAll(fd, data, path: temp)
            case let .produced(producer):
                // The producer cannot throw: the first failed write is kept and ends the file.
                var written = 0
                var failure: GGUFError?
                producer { chunk in
                    guard failure == nil else { return }
                    do throws(GGUFError) { try Self.writeAll(fd, chunk, path: temp) } catch { failure = error }
                    written += chunk.count
                }
                if let failure { throw failure }
                guard written == t.byteCount else { throw .tensorDataSize(tensor: t.name, expected: t.byteCount, got: written) }
            case let .file(source, offset):
                try Self.read(source, offset: offset, count: t.byteCount) { chunk throws(GGUFError) in try Self.writeAll(fd, chunk, path: temp) }
            }
            let padding = [UInt8](repeating: 0, count: Self.padded(t.byteCount, alignment) - t.byteCount)
            try Self.writeAll(fd, padding, path: temp)
        }
        guard rename(temp, path) == 0 else {
            throw .cannotOpen(path: path, reason: "rename: " + String(cString: strerror(errno)))
        }
        ok = true
    }

    /// The size of the whole file.
    public var byteCount: Int {
        headerBytes().count + tensors.reduce(0) { $0 + Self.padded($1.byteCount, alignment) }
    }

    /// The file in pieces of `chunkBytes` (the last one shorter), each made when it is asked for:
    /// a file streamed this way is never held whole. (A tensor from a producer is made whole
    /// when its turn comes; tensors from bytes or from a file are copied piece by piece.)
    public func chunks(of chunkBytes: Int) -> ChunkReader { ChunkReader(writer: self, chunkBytes: chunkBytes) }

    public struct ChunkReader: Sendable {
        private let writer: GGUFWriter
        private let chunkBytes: Int
        private var header: [UInt8]
        private var headerSent = 0
        private var tensor = 0
        /// Bytes of the current tensor, padding included, already handed out.
        private var done = 0
        /// The current tensor's bytes, when a producer made them.
        private var produced: [UInt8]?
        /// The whole file's size.
        public let byteCount: Int

        fileprivate init(writer: GGUFWriter, chunkBytes: Int) {
            precondition(chunkBytes > 0)
            self.writer = writer
            self.chunkBytes = chunkBytes
            header = writer.headerBytes()
            byteCount = writer.byteCount
        }

        /// The next piece, or nil at the end of the file.
        public mutating func next() throws(GGUFError) -> [UInt8]? {
            var out: [UInt8] = []
            out.reserveCapacity(chunkBytes)
            if headerSent < header.count {
                let n = min(chunkBytes, header.count - headerSent)
                out += header[headerSent ..< headerSent + n]
                headerSent += n
            }
            while out.count < chunkBytes, tensor < writer.tensors.count {
                let t = writer.tensors[tensor]
                let padded = GGUFWriter.padded(t.byteCount, writer.alignment)
                let n = min(chunkBytes - out.count, padded - done)
                let data = min(n, max(0, t.byteCount - done))  // of which tensor bytes; the rest padding
                if data > 0 {
                    switch t.payload {
                    case let .bytes(bytes):
                        out += bytes[done ..< done + data]
                    case let .file(path, offset):
                        try GGUFWriter.read(path, offset: offset + done, count: data) { out.append(contentsOf: $0) }
                    case let .produced(producer):
                        if produced == nil {
                            var bytes: [UInt8] = []
                            producer { bytes.append(contentsOf: $0) }
                            guard bytes.count == t.byteCount else { throw .tensorDataSize(tensor: t.name, expected: t.byteCount, got: bytes.count) }
                            produced = bytes
                        }
                        out += produced![done ..< done + data]
                    }
                }
                out += repeatElement(0, count: n - data)
                done += n
                if done == padded {
                    tensor += 1
                    done = 0
                    produced = nil
                }
            }
            return out.isEmpty ? nil : out
        }
    }

    /// Reads `count` bytes at `offset` of the file at `path`, handing them on in pieces.
    private static func read(_ path: String, offset: Int, count: Int,
                             _ body: (UnsafeRawBufferPointer) throws(GGUFError) -> Void) throws(GGUFError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let size = min(count, 4 << 20)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 4096)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n = pread(fd, buffer, min(size, count - done), off_t(offset + done))
            guard n > 0 else {
                throw .cannotOpen(path: path, reason: n == 0 ? "the file ends before byte \(offset + count)" : String(cString: strerror(errno)))
            }
            try body(UnsafeRawBufferPointer(start: buffer, count: n))
            done += n
        }
    }

    // MARK: - Encoding

    /// Header, metadata, tensor table and the padding up to the data section.
    private func headerBytes() -> [UInt8] {
        var out: [UInt8] = []
        Self.append(GGUFFile.magic, to: &out)
        Self.append(version, to: &out)
        Self.append(UInt64(tensors.count), to: &out)
        Self.append(UInt64(keys.count), to: &out)
        for key in keys {
            let value = metadata[key]!
            Self.append(key, to: &out)
            Self.append(value.code.rawValue, to: &out)
            Self.appendPayload(value, to: &out)
        }
        for (t, offset) in zip(tensors, tensorOffsets) {
            Self.append(t.name, to: &out)
            Self.append(UInt32(t.dims.count), to: &out)
            for d in t.dims { Self.append(UInt64(d), to: &out) }
            Self.append(t.type.rawValue, to: &out)
            Self.append(UInt64(offset), to: &out)
        }
        out += [UInt8](repeating: 0, count: Self.padded(out.count, alignment) - out.count)
        return out
    }

    /// A value without its type code (array items carry none).
    private static func appendPayload(_ value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case let .uint8(v): append(v, to: &out)
        case let .int8(v): append(v, to: &out)
        case let .uint16(v): append(v, to: &out)
        case let .int16(v): append(v, to: &out)
        case let .uint32(v): append(v, to: &out)
        case let .int32(v): append(v, to: &out)
        case let .uint64(v): append(v, to: &out)
        case let .int64(v): append(v, to: &out)
        case let .float32(v): append(v.bitPattern, to: &out)
        case let .float64(v): append(v.bitPattern, to: &out)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(s): append(s, to: &out)
        case let .array(elementType, items):
            append(elementType, to: &out)
            append(UInt64(items.count), to: &out)
            for item in items { appendPayload(item, to: &out) }
        }
    }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }

    private static func padded(_ n: Int, _ alignment: Int) -> Int {
        (n + alignment - 1) / alignment * alignment
    }

    private static func checkArrayTypes(_ value: GGUFValue, key: String) {
        guard case let .array(elementType, items) = value else { return }
        for item in items {
            guard item.code.rawValue == elementType else {
                fatalError("GGUFWriter: array '\(key)' of \(GGUFValue.typeName(elementType)) holds a \(item.typeName)")
            }
            checkArrayTypes(item, key: key)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(GGUFError) {
        let failure: GGUFError? = bytes.withUnsafeBytes { raw in
            do throws(GGUFError) {
                try writeAll(fd, raw, path: path)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(GGUFError) {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .cannotOpen(path: path, reason: "write: " + String(cString: strerror(errno))) }
            done += n
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

extension GGUFValue {
    /// The GGUF type code of this value.
    var code: Code {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }
}
