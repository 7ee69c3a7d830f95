/// SentencePiece-style BPE as llama.cpp runs it (`llm_tokenizer_spm_session`): start from the
/// UTF-8 characters of the text, repeatedly join the adjacent pair whose joined text is the token
/// with the highest score (leftmost first), and spell whatever is left that is no token as
/// byte tokens `<0xNN>`.
struct SentencePieceEncoder: Sendable {
    /// For each byte: `<0xNN>`, else the one-byte token, else the unknown token, else -1.
    let byteToken: [Int32]

    init(vocabulary: ByteTable, vocabCount: Int, unknownID: Int32?) {
        let hex = Array("0123456789ABCDEF".utf8)
        byteToken = (0 ..< 256).map { b in
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]  // <0xNN>
            if let id = vocabulary.find(name), Int(id) < vocabCount { return id }
            if let id = vocabulary.find([UInt8(b)]), Int(id) < vocabCount { return id }
            return unknownID ?? -1
        }
    }

    private struct Bigram {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32
    }

    /// Appends the tokens of `text`, which must already have its spaces escaped as `▁`.
    func encode(_ text: UnsafeBufferPointer<UInt8>, vocabulary: ByteTable, scores: [Float], into out: inout [Int32]) {
        let n = text.count
        guard n > 0 else { return }
        // Symbol i starts at start[i] and spans len[i] bytes; len 0 once merged into its left.
        var start: [Int32] = [], len: [Int32] = [], prev: [Int32] = [], next: [Int32] = []
        var offset = 0
        while offset < n {
            let l = min(Codepoints.sequenceLength(lead: text[offset]), n - offset)
            prev.append(Int32(start.count - 1))
            start.append(Int32(offset))
            len.append(Int32(l))
            offset += l
            next.append(offset == n ? -1 : Int32(start.count))
        }

        var heap = BinaryHeap<Bigram> { a, b in a.score > b.score || (a.score == b.score && a.left < b.left) }
        func addBigram(_ left: Int32, _ right: Int32) {
            guard left >= 0, right >= 0 else { return }
            let s = Int(start[Int(left)]), size = Int(len[Int(left)] + len[Int(right)])
            guard let id = vocabulary.find(UnsafeBufferPointer(rebasing: text[s ..< s + size])),
                  Int(id) < scores.count else { return }
            heap.push(Bigram(score: scores[Int(id)], left: left, right: right, size: Int32(size)))
        }

        for i in 1 ..< max(start.count, 1) { addBigram(Int32(i - 1), Int32(i)) }
        while let b = heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            guard len[l] > 0, len[r] > 0, len[l] + len[r] == b.size else { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = b.left }
            addBigram(prev[l], b.left)
            addBigram(b.left, next[l])
        }

        var i: Int32 = 0
        while i >= 0 {
            let s = Int(start[Int(i)]), l = Int(len[Int(i)])
            if let id = vocabulary.find(UnsafeBufferPointer(rebasing: text[s ..< s + l])), Int(id) < scores.count {
                out.append(id)
            } else {
                for k in s ..< s + l where byteToken[Int(text[k])] >= 0 { out.append(byteToken[Int(text[k])]) }
            }
            i = next[Int(i)]
        }
    }
}
