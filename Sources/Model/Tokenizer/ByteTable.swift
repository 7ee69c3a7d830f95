/// A hash table from byte strings to ids, looked up straight from a buffer (no key allocation).
///
/// Keys are raw bytes, never `String`: Swift compares strings by canonical equivalence, so
/// `"é"` and `"e\u{301}"` would collide, while a vocabulary may hold both as different tokens.
/// Open addressing with linear probing; keys live back to back in one arena.
struct ByteTable: Sendable {
    private var arena: [UInt8] = []
    /// Entry `i` spans `arena[starts[i] ..< starts[i + 1]]`.
    private var starts: [Int] = [0]
    private var values: [Int32] = []
    /// Entry index + 1; 0 marks an empty slot.
    private var slots: [Int32]
    private var mask: Int

    var count: Int { values.count }

    init(minimumCapacity: Int) {
        var size = 16
        while size < minimumCapacity * 2 { size <<= 1 }
        slots = [Int32](repeating: 0, count: size)
        mask = size - 1
        arena.reserveCapacity(minimumCapacity * 8)
        starts.reserveCapacity(minimumCapacity + 1)
        values.reserveCapacity(minimumCapacity)
    }

    /// FNV-1a, 64 bit: keys are short (a token's text), so a simple byte loop is fast enough.
    @inline(__always)
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    @inline(__always)
    private func keyEquals(entry: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let s = starts[entry], e = starts[entry + 1]
        guard e - s == key.count else { return false }
        return arena.withUnsafeBufferPointer { a in
            for i in 0 ..< key.count where a[s + i] != key[i] { return false }
            return true
        }
    }

    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        var i = Self.hash(key) & mask
        while true {
            let slot = Int(slots[i])
            if slot == 0 { return nil }
            if keyEquals(entry: slot - 1, key) { return values[slot - 1] }
            i = (i + 1) & mask
        }
    }

    func find(_ key: [UInt8]) -> Int32? { key.withUnsafeBufferPointer { find($0) } }

    /// Inserts `key -> value` unless the key is present; returns the value already stored then.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Int32? {
        if (values.count + 1) * 2 > slots.count { grow() }
        var i = Self.hash(key) & mask
        while true {
            let slot = Int(slots[i])
            if slot == 0 { break }
            if keyEquals(entry: slot - 1, key) { return values[slot - 1] }
            i = (i + 1) & mask
        }
        arena.append(contentsOf: key)
        starts.append(arena.count)
        values.append(value)
        slots[i] = Int32(values.count)
        return nil
    }

    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32) -> Int32? {
        key.withUnsafeBufferPointer { insert($0, value: value) }
    }

    private mutating func grow() {
        let size = slots.count * 2
        var newSlots = [Int32](repeating: 0, count: size)
        let newMask = size - 1
        arena.withUnsafeBufferPointer { a in
            for entry in 0 ..< values.count {
                let key = UnsafeBufferPointer(rebasing: a[starts[entry] ..< starts[entry + 1]])
                var i = Self.hash(key) & newMask
                while newSlots[i] != 0 { i = (i + 1) & newMask }
                newSlots[i] = Int32(entry + 1)
            }
        }
        slots = newSlots
        mask = newMask
    }
}
