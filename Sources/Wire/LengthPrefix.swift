/// The size of a length or count prefix: each field's prefix is the smallest that holds its limit.
enum LengthPrefix {
    case u8, u16, u32

    /// The largest count the prefix can state.
    var max: Int {
        switch self {
        case .u8: Int(UInt8.max)
        case .u16: Int(UInt16.max)
        case .u32: Int(UInt32.max)
        }
    }

    var bytes: Int {
        switch self {
        case .u8: 1
        case .u16: 2
        case .u32: 4
        }
    }
}
