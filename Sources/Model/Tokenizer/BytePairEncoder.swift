/// GPT-2's reversible map between bytes and printable code points: byte-level BPE vocabularies
/// spell every byte as one of these characters (a space is `Ġ`, U+0120).
enum ByteLevel {
    /// The code point that stands for each byte.
    static let codepointForByte: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21 ... 0x7E { printable[b] = true }
        for b in 0xA1 ... 0xAC { printable[b] = true }
        for b in 0xAE ... 0xFF { printable[b] = true }
        var n: UInt32 = 0
        for b in 0 ..< 256 {
            if printable[b] {
                map[b] = UInt32(b)
            } else {
                map[b] = 256 + n
                n += 1
            }
        }
        return map
    }()

    /// The byte each of those code points stands for (-1 for any other code point below 512).
    static let byteForCodepoint: [Int16] = {
        var map = [Int16](repeating: -1, count: 512)
        for (b, c) in codepointForByte.enumerated() { map[Int(c)] = Int16(b) }
        return map
    }()

    /// UTF-8 of the code point standing for each byte.
    static let encodedByte: [[UInt8]] = codepointForByte.map { c in
        var out: [UInt8] = []
        Codepoints.appendUTF8(c, to: &out)
        return out
    }

    /// The raw bytes a byte-level token text stands for. A code point outside the map (not
    /// produced by GPT-2's encoding) is kept as its own UTF-8; llama.cpp writes an
    /// `[UNK_BYTE_0x..]` marker there instead.
    static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for c in Codepoints.decode(text) {
            if c < 512, case let b = byteForCodepoint[Int(c)], b >= 0 {
                out.append(UInt8(b))
            } else {
                Codepoints.appendUTF8(c, to: &out)
            }
        }
        return out
    }
}

/// Byte-level BPE as llama.cpp runs it (`llm_tokenizer_bpe_session`): split into words, then in
/// each word repeatedly merge the adjacent pair with the lowest merge rank (leftmost first).
///
/// Merging works on integer symbols rather than strings: every distinct text that can appear
/// (tokens, and merge halves or results that are not tokens) gets an id, and the merge table maps
/// a pair of ids to its rank and the id of the joined text. This is the same computation as
/// llama.cpp's string-keyed one, since equal texts always get equal ids.
struct BytePairEncoder: Sendable {
    let preTokenizer: PreTokenizer
    let ignoreMerges: Bool
    let vocabCount: Int
    /// Byte-level text -> symbol id; ids below `vocabCount` are tokens.
    private let symbols: ByteTable
    /// `left << 32 | right` -> `rank << 32 | merged`.
    private let merges: [UInt64: UInt64]
    /// The symbol of each byte's one-character text.
    private let byteSymbol: [Int32]
    /// For the fallback of a word left with a symbol that is no token: the token whose text is
    /// the single byte `e`, or -1 (llama.cpp looks up each byte of the encoded text alone).
    private let singleByteToken: [Int32]

    /// `vocabulary` maps token texts to ids; `merges` are `tokenizer.ggml.merges` (rank = index).
    init(vocabulary: ByteTable, vocabCount: Int, merges mergeList: [String], config: PreTokenizer.Config) {
        preTokenizer = config.kind
        ignoreMerges = config.ignoreMerges
        self.vocabCount = vocabCount
        var table = vocabulary
        var next = Int32(vocabCount)
        func intern(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
            if let id = table.find(key) { return id }
            table.insert(key, value: next)
            next += 1
            return next - 1
        }

        var pairs: [UInt64: UInt64] = [:]
        pairs.reserveCapacity(mergeList.count)
        var joined: [UInt8] = []
        for (rank, merge) in mergeList.enumerated() {
            var merge = merge
            merge.withUTF8 { m in
                // llama.cpp splits at the first space after the first byte.
                guard m.count > 2, let space = m.dropFirst().firstIndex(of: 0x20) else { return }
                let left = intern(UnsafeBufferPointer(rebasing: m[..<space]))
                let right = intern(UnsafeBufferPointer(rebasing: m[(space + 1)...]))
                joined.removeAll(keepingCapacity: true)
                joined.append(contentsOf: m[..<space])
                joined.append(contentsOf: m[(space + 1)...])
                let merged = joined.withUnsafeBufferPointer { intern($0) }
                let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
                if pairs[key] == nil { pairs[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
            }
        }
        byteSymbol = ByteLevel.encodedByte.map { e in e.withUnsafeBufferPointer { intern($0) } }
        singleByteToken = (0 ..< 256).map { e in
            guard let id = table.find([UInt8(e)]), Int(id) < vocabCount else { return -1 }
            return id
        }
        symbols = table
        merges = pairs
    }

    /// Appends the tokens of a piece of raw text (no special tokens in it).
    func encode(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        let cpts = Codepoints.decode(text)
        var word: [UInt8] = []
        var scratch = Scratch()
        var start = 0
        for length in preTokenizer.split(cpts) {
            // Words are re-encoded from the code points: invalid input bytes became U+FFFD.
            word.removeAll(keepingCapacity: true)
            for i in start ..< start + length { Codepoints.appendUTF8(cpts[i], to: &word) }
            word.withUnsafeBufferPointer { encodeWord($0, into: &out, scratch: &scratch) }
            start += length
        }
    }

    private struct Bigram {
        var rank: UInt32
        var left: Int32
        var right: Int32
        var leftSymbol: Int32
        var rightSymbol: Int32
        var merged: Int32
    }

    /// Buffers reused from word to word. Symbol `i` covers `len[i]` bytes of the word from byte `i`.
    private struct Scratch {
        var symbol: [Int32] = []
        var len: [Int32] = []
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap = BinaryHeap<Bigram> { a, b in a.rank < b.rank || (a.rank == b.rank && a.left < b.left) }
        var key: [UInt8] = []
    }

    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int32], scratch s: inout Scratch) {
        let n = word.count
        guard n > 0 else { return }
        if ignoreMerges {
            s.key.removeAll(keepingCapacity: true)
            for b in word { s.key.append(contentsOf: ByteLevel.encodedByte[Int(b)]) }
            if let id = symbols.find(s.key), Int(id) < vocabCount {
                out.append(id)
                return
            }
        }
        s.symbol.removeAll(keepingCapacity: true)
        s.len.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        for i in 0 ..< n {
            s.symbol.append(byteSymbol[Int(word[i])])
            s.len.append(1)
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < n ? Int32(i + 1) : -1)
        }
        s.heap.removeAll()

        func addBigram(_ left: Int32, _ right: Int32, _ s: inout Scratch) {
            guard left >= 0, right >= 0 else { return }
            let l = s.symbol[Int(left)], r = s.symbol[Int(right)]
            guard let m = merges[UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))] else { return }
            s.heap.push(Bigram(rank: UInt32(m >> 32), left: left, right: right, leftSymbol: l, rightSymbol: r,
                               merged: Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)))
        }

        for i in 1 ..< max(n, 1) { addBigram(Int32(i - 1), Int32(i), &s) }
        while let b = s.heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            // Stale: one side was merged away, or changed since the pair was queued.
            guard s.len[l] > 0, s.len[r] > 0, s.symbol[l] == b.leftSymbol, s.symbol[r] == b.rightSymbol else { continue }
            s.symbol[l] = b.merged
            s.len[l] += s.len[r]
            s.len[r] = 0
            s.next[l] = s.next[r]
            if s.next[r] >= 0 { s.prev[Int(s.next[r])] = b.left }
            addBigram(s.prev[l], b.left, &s)
            addBigram(b.left, s.next[l], &s)
        }

        var i: Int32 = 0
        while i >= 0 {
            let sym = s.symbol[Int(i)]
            if Int(sym) < vocabCount {
                out.append(sym)
            } else {
                // Not a token: llama.cpp looks up each byte of the encoded text on its own.
                for k in Int(i) ..< Int(i) + Int(s.len[Int(i)]) {
                    for e in ByteLevel.encodedByte[Int(word[k])] where singleByteToken[Int(e)] >= 0 {
                        out.append(singleByteToken[Int(e)])
                    }
                }
            }
            i = s.next[Int(i)]
        }
    }
}

/// A binary min-heap ordered by `less`.
struct BinaryHeap<Element> {
    private var items: [Element] = []
    private let less: (Element, Element) -> Bool

    init(less: @escaping (Element, Element) -> Bool) { self.less = less }

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && less(items[l], items[m]) { m = l }
            if r < n && less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
