/// Everything that can be wrong with a GGUF file, each naming the key or tensor concerned.
public enum GGUFError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case badMagic(found: UInt32)
    case unsupportedVersion(UInt32)
    case truncated(what: String, offset: Int, needed: Int, available: Int)
    case countTooLarge(what: String, count: UInt64, limit: UInt64)
    case unknownValueType(key: String, type: UInt32)
    case nestingTooDeep(key: String)
    case duplicateKey(String)
    case duplicateTensor(String)
    case badDimensionCount(tensor: String, nDims: UInt32)
    case badDimension(tensor: String, dims: [Int64])
    case sizeOverflow(tensor: String)
    case unknownTensorType(tensor: String, type: UInt32)
    case unsupportedTensorType(tensor: String, type: String)
    case notBlockAligned(tensor: String, type: String, elements: Int64, blockSize: Int)
    case badAlignment(UInt64)
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfFile(tensor: String, offset: UInt64, size: Int, dataSize: Int)
    case overlappingTensors(String, String)
    /// A tensor given to `GGUFWriter` whose data is not the size its type and dims call for.
    case tensorDataSize(tensor: String, expected: Int, got: Int)
    case missingKey(String)
    case wrongValueType(key: String, expected: String, found: String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], got: [Int])
    case unsupportedArchitecture(String)
    case invalidValue(key: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): "cannot open '\(path)': \(reason)"
        case let .badMagic(found): "not a GGUF file: magic is 0x\(String(found, radix: 16)), expected 0x46554747 ('GGUF')"
        case let .unsupportedVersion(v): "unsupported GGUF version \(v); expected 2 or 3"
        case let .truncated(what, offset, needed, available):
            "file truncated reading \(what) at byte \(offset): need \(needed) bytes, \(available) left"
        case let .countTooLarge(what, count, limit): "\(what) count \(count) is larger than the file allows (\(limit))"
        case let .unknownValueType(key, type): "metadata key '\(key)' has unknown value type \(type)"
        case let .nestingTooDeep(key): "metadata key '\(key)' nests arrays too deeply"
        case let .duplicateKey(key): "duplicate metadata key '\(key)'"
        case let .duplicateTensor(name): "duplicate tensor name '\(name)'"
        case let .badDimensionCount(tensor, n): "tensor '\(tensor)' has \(n) dimensions; expected 1 to 4"
        case let .badDimension(tensor, dims): "tensor '\(tensor)' has invalid dimensions \(dims); each must be at least 1"
        case let .sizeOverflow(tensor): "tensor '\(tensor)' is too large: its size overflows"
        case let .unknownTensorType(tensor, type): "tensor '\(tensor)' has unknown type \(type)"
        case let .unsupportedTensorType(tensor, type): "tensor '\(tensor)' has type \(type), which Strata does not support"
        case let .notBlockAligned(tensor, type, elements, block):
            "tensor '\(tensor)' of type \(type) has \(elements) elements per row, not a multiple of the block size \(block)"
        case let .badAlignment(a): "general.alignment is \(a); expected a power of two"
        case let .misalignedTensor(tensor, offset, alignment): "tensor '\(tensor)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .tensorOutOfFile(tensor, offset, size, dataSize):
            "tensor '\(tensor)' data (offset \(offset), \(size) bytes) lies outside the file's data section (\(dataSize) bytes)"
        case let .overlappingTensors(a, b): "tensors '\(a)' and '\(b)' overlap in the file"
        case let .tensorDataSize(tensor, expected, got): "tensor '\(tensor)' has \(got) bytes of data; its type and dimensions need \(expected)"
        case let .missingKey(key): "missing metadata key '\(key)'"
        case let .wrongValueType(key, expected, found): "metadata key '\(key)' has type \(found); expected \(expected)"
        case let .missingTensor(name): "missing tensor '\(name)'"
        case let .shapeMismatch(tensor, expected, got): "tensor '\(tensor)' has wrong shape; expected \(expected), got \(got)"
        case let .unsupportedArchitecture(arch): "unsupported architecture '\(arch)'; Strata runs 'llama'"
        case let .invalidValue(key, reason): "metadata key '\(key)': \(reason)"
        }
    }
}
