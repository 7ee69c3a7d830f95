/// One tensor's entry in the GGUF tensor table.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Dimensions, innermost first as GGUF stores them: a matrix of `rows` rows of `cols` elements
    /// has `dims == [cols, rows]`.
    public let dims: [Int]
    public let type: GGMLType
    /// Offset of the data from the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
    /// Elements in one row (the innermost dimension).
    public var cols: Int { dims[0] }
    /// Rows: the product of the outer dimensions.
    public var rows: Int { dims.dropFirst().reduce(1, *) }
    public var rowBytes: Int { byteCount / max(rows, 1) }
}

/// A GGUF file (versions 2 and 3), memory-mapped and validated before any of it is used.
///
/// Every count and length is checked against the bytes left before anything is allocated for
/// it; every tensor is checked for type, shape, block divisibility, alignment and that its data
/// lies inside the file.
public final class GGUFFile: Sendable {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    public static let defaultAlignment = 32
    /// Deepest nesting of arrays accepted in metadata.
    static let maxArrayDepth = 2
    /// Most elements accepted in one metadata array.
    public static let maxArrayLength: UInt64 = 1 << 24

    public let map: MappedFile
    public let version: UInt32
    /// Metadata keys in file order.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    public let alignment: Int
    /// Byte offset of the data section in the file.
    public let dataOffset: Int

    public var path: String { map.path }
    public var fileSize: Int { map.bytes.count }

    public convenience init(path: String) throws(GGUFError) {
        try self.init(map: MappedFile(path: path))
    }

    public init(map: MappedFile) throws(GGUFError) {
        self.map = map
        var r = ByteReader(map.bytes)
        let magic = try r.read(UInt32.self, "magic")
        guard magic == Self.magic else { throw .badMagic(found: magic) }
        version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try r.read(UInt64.self, "tensor count")
        let kvCount = try r.read(UInt64.self, "metadata count")
        // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
        // least 8 + 4 + 8 + 4 + 8.
        let limitKV = UInt64(r.remaining / 13)
        guard kvCount <= limitKV else { throw .countTooLarge(what: "metadata", count: kvCount, limit: limitKV) }
        let limitTensors = UInt64(r.remaining / 32)
        guard tensorCount <= limitTensors else {
            throw .countTooLarge(what: "tensor", count: tensorCount, limit: limitTensors)
        }

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for i in 0 ..< Int(kvCount) {
            let key = try r.readString("metadata key #\(i)")
            let type = try r.read(UInt32.self, "type of '\(key)'")
            let value = try Self.readValue(&r, type: type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw .duplicateKey(key) }
            keys.append(key)
        }
        self.keys = keys
        self.metadata = metadata

        var alignment = Self.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard case let .uint32(v) = a else {
                throw .wrongValueType(key: "general.alignment", expected: "uint32", found: a.typeName)
            }
            guard v > 0, v & (v - 1) == 0, v <= 1 << 20 else { throw .badAlignment(UInt64(v)) }
            alignment = Int(v)
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for i in 0 ..< Int(tensorCount) {
            let info = try Self.readTensorInfo(&r, number: i, alignment: alignment)
            guard index.updateValue(infos.count, forKey: info.name) == nil else { throw .duplicateTensor(info.name) }
            infos.append(info)
        }

        let (padded, overflow) = r.offset.addingReportingOverflow((alignment - r.offset % alignment) % alignment)
        guard !overflow else { throw .truncated(what: "data section", offset: r.offset, needed: alignment, available: r.remaining) }
        dataOffset = padded
        let dataSize = max(0, map.bytes.count - padded)
        for t in infos {
            guard t.offset <= dataSize, t.byteCount <= dataSize - t.offset else {
                throw .tensorOutOfFile(tensor: t.name, offset: UInt64(t.offset), size: t.byteCount, dataSize: dataSize)
            }
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteCount > 0 && a.offset + a.byteCount > b.offset {
            throw .overlappingTensors(a.name, b.name)
        }
        tensors = infos
        tensorIndex = index
    }

    private static func readValue(_ r: inout ByteReader, type: UInt32, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        guard let code = GGUFValue.Code(rawValue: type) else { throw .unknownValueType(key: key, type: type) }
        switch code {
        case .uint8: return .uint8(try r.read(UInt8.self, "value of '\(key)'"))
        case .int8: return .int8(try r.read(Int8.self, "value of '\(key)'"))
        case .uint16: return .uint16(try r.read(UInt16.self, "value of '\(key)'"))
        case .int16: return .int16(try r.read(Int16.self, "value of '\(key)'"))
        case .uint32: return .uint32(try r.read(UInt32.self, "value of '\(key)'"))
        case .int32: return .int32(try r.read(Int32.self, "value of '\(key)'"))
        case .uint64: return .uint64(try r.read(UInt64.self, "value of '\(key)'"))
        case .int64: return .int64(try r.read(Int64.self, "value of '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try r.read(UInt32.self, "value of '\(key)'")))
        case .float64: return .float64(Double(bitPattern: try r.read(UInt64.self, "value of '\(key)'")))
        case .bool:
            let b = try r.read(UInt8.self, "value of '\(key)'")
            guard b <= 1 else { throw .invalidValue(key: key, reason: "bool byte is \(b); expected 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try r.readString("value of '\(key)'"))
        case .array:
            guard depth < maxArrayDepth else { throw .nestingTooDeep(key: key) }
            let elementType = try r.read(UInt32.self, "array type of '\(key)'")
            guard let elementCode = GGUFValue.Code(rawValue: elementType) else {
                throw .unknownValueType(key: key, type: elementType)
            }
            let count = try r.read(UInt64.self, "array length of '\(key)'")
            let minSize: Int = switch elementCode {
            case .uint8, .int8, .bool: 1
            case .uint16, .int16: 2
            case .uint32, .int32, .float32: 4
            case .uint64, .int64, .float64, .string: 8
            case .array: 12
            }
            // Each element becomes a GGUFValue of ~24 bytes: cap arrays so that a hostile file
            // cannot make us allocate many times its size (the largest vocabularies and merge
            // lists hold a few hundred thousand entries).
            let limit = min(UInt64(r.remaining / minSize), Self.maxArrayLength)
            guard count <= limit else { throw .countTooLarge(what: "array '\(key)' element", count: count, limit: limit) }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0 ..< Int(count) {
                items.append(try readValue(&r, type: elementType, key: key, depth: depth + 1))
            }
            return .array(elementType: elementType, items)
        }
    }

    private static func readTensorInfo(_ r: inout ByteReader, number: Int, alignment: Int) throws(GGUFError) -> GGUFTensorInfo {
        let name = try r.readString("name of tensor #\(number)")
        let nDims = try r.read(UInt32.self, "dimension count of '\(name)'")
        guard (1 ... 4).contains(nDims) else { throw .badDimensionCount(tensor: name, nDims: nDims) }
        var raw: [Int64] = []
        for _ in 0 ..< nDims { raw.append(Int64(bitPattern: try r.read(UInt64.self, "dimensions of '\(name)'"))) }
        guard raw.allSatisfy({ $0 >= 1 }) else { throw .badDimension(tensor: name, dims: raw) }
        let dims = raw.map { Int($0) }
        var elements = 1
        for d in dims {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            guard !o else { throw .sizeOverflow(tensor: name) }
            elements = p
        }
        let typeCode = try r.read(UInt32.self, "type of '\(name)'")
        let offset = try r.read(UInt64.self, "offset of '\(name)'")
        guard let type = GGMLType(rawValue: typeCode) else {
            if GGMLType.name(of: typeCode).hasPrefix("type#") { throw .unknownTensorType(tensor: name, type: typeCode) }
            throw .unsupportedTensorType(tensor: name, type: GGMLType.name(of: typeCode))
        }
        guard type.isWeightType else { throw .unsupportedTensorType(tensor: name, type: type.description) }
        guard dims[0] % type.blockSize == 0 else {
            throw .notBlockAligned(tensor: name, type: type.description, elements: raw[0], blockSize: type.blockSize)
        }
        guard let bytes = type.byteCount(elements: elements) else { throw .sizeOverflow(tensor: name) }
        guard offset % UInt64(alignment) == 0 else { throw .misalignedTensor(tensor: name, offset: offset, alignment: alignment) }
        guard offset <= UInt64(Int.max) else { throw .sizeOverflow(tensor: name) }
        return GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset), byteCount: bytes)
    }
}

// MARK: - Typed access

extension GGUFFile {
    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The bytes of a tensor, inside the mapping (no copy).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: map.bytes[(dataOffset + tensor.offset) ..< (dataOffset + tensor.offset + tensor.byteCount)])
    }

    public func string(_ key: String) throws(GGUFError) -> String {
        guard let v = metadata[key] else { throw .missingKey(key) }
        guard let s = v.stringValue else { throw .wrongValueType(key: key, expected: "string", found: v.typeName) }
        return s
    }

    public func optionalString(_ key: String) throws(GGUFError) -> String? {
        metadata[key] == nil ? nil : try string(key)
    }

    public func int(_ key: String) throws(GGUFError) -> Int {
        guard let v = metadata[key] else { throw .missingKey(key) }
        guard let i = v.intValue else { throw .wrongValueType(key: key, expected: "integer", found: v.typeName) }
        return i
    }

    public func optionalInt(_ key: String) throws(GGUFError) -> Int? {
        metadata[key] == nil ? nil : try int(key)
    }

    public func float(_ key: String) throws(GGUFError) -> Double {
        guard let v = metadata[key] else { throw .missingKey(key) }
        guard let f = v.floatValue else { throw .wrongValueType(key: key, expected: "float", found: v.typeName) }
        return f
    }

    public func optionalFloat(_ key: String) throws(GGUFError) -> Double? {
        metadata[key] == nil ? nil : try float(key)
    }

    public func optionalBool(_ key: String) throws(GGUFError) -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.boolValue else { throw .wrongValueType(key: key, expected: "bool", found: v.typeName) }
        return b
    }

    private func array(_ key: String) throws(GGUFError) -> [GGUFValue]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.arrayValue else { throw .wrongValueType(key: key, expected: "array", found: v.typeName) }
        return a
    }

    public func stringArray(_ key: String) throws(GGUFError) -> [String]? {
        guard let a = try array(key) else { return nil }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let s = v.stringValue else { throw .wrongValueType(key: key, expected: "array[string]", found: "array of \(v.typeName)") }
            out.append(s)
        }
        return out
    }

    public func floatArray(_ key: String) throws(GGUFError) -> [Float]? {
        guard let a = try array(key) else { return nil }
        var out: [Float] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let f = v.floatValue else { throw .wrongValueType(key: key, expected: "array[float32]", found: "array of \(v.typeName)") }
            out.append(Float(f))
        }
        return out
    }

    public func intArray(_ key: String) throws(GGUFError) -> [Int]? {
        guard let a = try array(key) else { return nil }
        var out: [Int] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = v.intValue else { throw .wrongValueType(key: key, expected: "array[integer]", found: "array of \(v.typeName)") }
            out.append(i)
        }
        return out
    }
}
