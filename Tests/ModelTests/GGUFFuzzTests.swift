import Foundation
import StrataModel
import Testing
import TestSupport

/// Every truncation and many random mutations of a valid file: the reader must throw a
/// `GGUFError` or load, never crash or hang, and whatever it loads must be safe to use.
@Suite struct GGUFFuzzTests {
    /// Every prefix shorter than the end of the last tensor's data is refused; the rest (the
    /// last tensor's padding) load.
    @Test(arguments: [UInt32(2), 3])
    func everyTruncation(version: UInt32) throws {
        let valid = sampleWriter(version: version).bytes()
        let file = try loadGGUF(valid)
        let last = try #require(file.tensors.last)
        let end = file.dataOffset + last.offset + last.byteCount
        #expect(end < valid.count, "the sample should end with padding")
        for n in 0 ..< valid.count {
            let error = loadError(Array(valid[..<n]))
            if n < end {
                switch error {
                case .truncated?, .countTooLarge?, .tensorOutOfFile?: break
                case nil: Issue.record("prefix of \(n) bytes loaded")
                case let e?: Issue.record("prefix of \(n) bytes: unexpected \(e)")
                }
            } else {
                #expect(error == nil, "prefix of \(n) bytes")
            }
        }
    }

    /// 20,000 seeded random mutations: bit flips, random bytes, extreme integers written over
    /// fields, truncations, and bytes inserted or removed. Mostly in the header, metadata and
    /// tensor table, where the reader looks.
    @Test func randomMutations() throws {
        let valid = sampleWriter().bytes()
        let headerEnd = try loadGGUF(valid).dataOffset
        var rng = SplitMix64(seed: 0x5EED_6617)
        let extremes: [UInt64] = [0, 1, 2, 3, 4, 5, 9, 12, 13, 31, 32, 33, 255, 256, 0x7FFF_FFFF, 0x8000_0000,
                                  0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 62, .max >> 1, .max - 31, .max]
        let path = temporaryGGUFPath("fuzz")
        defer { unlink(path) }
        var loaded = 0
        var kinds: [String: Int] = [:]

        for _ in 0 ..< 20_000 {
            var b = valid
            for _ in 0 ..< Int.random(in: 1 ... 3, using: &rng) where !b.isEmpty {
                let at = Bool.random(using: &rng) || b.count <= headerEnd
                    ? Int.random(in: 0 ..< min(headerEnd, b.count), using: &rng)
                    : Int.random(in: 0 ..< b.count, using: &rng)
                switch Int.random(in: 0 ..< 6, using: &rng) {
                case 0:
                    b[at] ^= 1 << UInt8.random(in: 0 ..< 8, using: &rng)
                case 1:
                    b[at] = UInt8.random(in: 0 ... 255, using: &rng)
                case 2:
                    let v = extremes.randomElement(using: &rng)!
                    if at + 8 <= b.count { b.put(v, at: at) }
                case 3:
                    let v = UInt32(truncatingIfNeeded: extremes.randomElement(using: &rng)!)
                    if at + 4 <= b.count { b.put(v, at: at) }
                case 4:
                    b.insert(contentsOf: (0 ..< Int.random(in: 1 ... 9, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }, at: at)
                default:
                    b.removeSubrange(at ..< min(b.count, at + Int.random(in: 1 ... 9, using: &rng)))
                }
            }
            if Int.random(in: 0 ..< 8, using: &rng) == 0 { b.removeLast(Int.random(in: 0 ... b.count, using: &rng)) }

            b.withUnsafeBytes { raw in
                // A new file each time: truncating one in place makes ext4 flush it on close.
                unlink(path)
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
                precondition(fd >= 0)
                if raw.count > 0 { precondition(Foundation.write(fd, raw.baseAddress!, raw.count) == raw.count) }
                close(fd)
            }
            do throws(GGUFError) {
                let file = try GGUFFile(path: path)
                loaded += 1
                use(file)
            } catch {
                kinds[String("\(error)".prefix(while: { $0 != "'" && $0 != ":" })), default: 0] += 1
            }
        }
        // Both outcomes happen: the mutations are neither all harmless nor all fatal.
        #expect(loaded > 100)
        #expect(kinds.values.reduce(0, +) > 10_000)
    }

    /// Touches everything a loaded file offers, so that a file that loads but lies would crash here.
    private func use(_ file: GGUFFile) {
        var sum = 0
        for t in file.tensors {
            for byte in file.data(of: t) { sum &+= Int(byte) }
            sum &+= t.rows &* t.cols &+ t.rowBytes
        }
        for key in file.keys { sum &+= file.metadata[key]!.description.utf8.count }
        _ = try? file.stringArray("k.arr.str")
        #expect(sum != Int.min)
    }
}
