/// A metadata value, of any of GGUF's thirteen value types.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// An array: the GGUF element type code and the elements.
    case array(elementType: UInt32, [GGUFValue])

    /// GGUF's value type codes.
    enum Code: UInt32 {
        case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64
    }

    /// Name of a type code for messages.
    static func typeName(_ code: UInt32) -> String {
        guard let c = Code(rawValue: code) else { return "type#\(code)" }
        return "\(c)"
    }

    public var typeName: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float32: "float32"
        case .float64: "float64"
        case .bool: "bool"
        case .string: "string"
        case let .array(t, _): "array[\(GGUFValue.typeName(t))]"
        }
    }

    /// The value as an integer, for any integer type (and bool), when it fits in Int.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        case let .bool(v): v ? 1 : 0
        default: nil
        }
    }

    /// The value as a float, for float and integer types.
    public var floatValue: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case let .string(s) = self { s } else { nil } }
    public var boolValue: Bool? { if case let .bool(b) = self { b } else { nil } }
    public var arrayValue: [GGUFValue]? { if case let .array(_, a) = self { a } else { nil } }
}

extension GGUFValue: CustomStringConvertible {
    /// A short rendering for `strata inspect`: long arrays and strings are abbreviated.
    public var description: String {
        switch self {
        case let .string(s):
            let shown = s.count > 80 ? String(s.prefix(77)) + "..." : s
            return "\"" + shown.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n") + "\""
        case let .array(t, items):
            let head = items.prefix(5).map(\.description).joined(separator: ", ")
            return "[\(head)\(items.count > 5 ? ", ..." : "")] (\(items.count) × \(GGUFValue.typeName(t)))"
        case let .bool(b): return "\(b)"
        case let .float32(f): return "\(f)"
        case let .float64(f): return "\(f)"
        default: return intValue.map { "\($0)" } ?? typeName
        }
    }
}
