/// A growable, 64-byte aligned buffer reused across forward passes.
struct ScratchBuffer {
    private(set) var raw: UnsafeMutableRawPointer = .allocate(byteCount: 64, alignment: 64)
    private(set) var byteCount = 64

    mutating func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > byteCount {
            raw.deallocate()
            byteCount = bytes
            raw = .allocate(byteCount: bytes, alignment: 64)
        }
        return raw
    }

    mutating func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
        reserve(bytes: n * 4).assumingMemoryBound(to: Float.self)
    }

    func free() { raw.deallocate() }
}
