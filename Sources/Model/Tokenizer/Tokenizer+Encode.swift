extension Tokenizer {
    /// Token ids for `text`. `parseSpecial`: special-token text (`<|im_start|>`) becomes that
    /// token, as for chat prompts. `addBOS`: prepend BOS if the vocabulary says so (`addBOS`
    /// property), and append EOS if it says so (`tokenizer.ggml.add_eos_token`), as llama.cpp's
    /// `add_special` does.
    public func encode(_ text: String, addBOS: Bool, parseSpecial: Bool) -> [Int32] {
        encode(bytes: Array(text.utf8), addBOS: addBOS, parseSpecial: parseSpecial)
    }

    /// Token ids for raw bytes, which need not be valid UTF-8: for BPE an invalid byte is read as
    /// U+FFFD (as llama.cpp does); SentencePiece spells it as a byte token.
    public func encode(bytes: [UInt8], addBOS: Bool, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 2)
        let fragments = partition(bytes, parseSpecial: parseSpecial)
        let addSpecial = addBOS
        if addSpecial && self.addBOS, let bos = special.bos { out.append(bos) }
        bytes.withUnsafeBufferPointer { buf in
            switch model {
            case let .sentencePiece(spm):
                var previousWasSpecial = true  // the text's start counts as after a special token
                var text: [UInt8] = []
                for fragment in fragments {
                    switch fragment {
                    case let .token(id):
                        out.append(id)
                        previousWasSpecial = true
                    case let .text(range):
                        text.removeAll(keepingCapacity: true)
                        if addSpacePrefix && previousWasSpecial { text.append(contentsOf: [0xE2, 0x96, 0x81]) }
                        for b in buf[range] {
                            if b == 0x20 { text.append(contentsOf: [0xE2, 0x96, 0x81]) } else { text.append(b) }
                        }
                        text.withUnsafeBufferPointer { spm.encode($0, vocabulary: table, scores: scores, into: &out) }
                        previousWasSpecial = false
                    }
                }
            case let .bytePair(bpe):
                for fragment in fragments {
                    switch fragment {
                    case let .token(id): out.append(id)
                    case let .text(range): bpe.encode(UnsafeBufferPointer(rebasing: buf[range]), into: &out)
                    }
                }
            }
        }
        if addSpecial && addEOS, let eos = special.eos { out.append(eos) }
        return out
    }

    enum Fragment: Equatable {
        case text(Range<Int>)
        case token(Int32)
    }

    /// Splits text around special-token text, as llama.cpp's `tokenizer_st_partition`: each
    /// special token in turn (longest first) is cut out of every text fragment left so far.
    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        guard !bytes.isEmpty else { return [] }
        var fragments: [Fragment] = [.text(0 ..< bytes.count)]
        bytes.withUnsafeBufferPointer { buf in
            texts.bytes.withUnsafeBufferPointer { all in
                for id in specialTokens {
                    if !parseSpecial && !attributes[Int(id)].isDisjoint(with: .hidden) { continue }
                    let s = texts.offsets[Int(id)], e = texts.offsets[Int(id) + 1]
                    let needle = UnsafeBufferPointer(rebasing: all[s ..< e])
                    guard needle.count > 0, needle.count <= bytes.count else { continue }
                    var split: [Fragment] = []
                    var changed = false
                    for fragment in fragments {
                        guard case var .text(range) = fragment else { split.append(fragment); continue }
                        while let at = Self.find(needle, in: buf, range) {
                            if at > range.lowerBound { split.append(.text(range.lowerBound ..< at)) }
                            split.append(.token(id))
                            range = at + needle.count ..< range.upperBound
                            changed = true
                        }
                        if !range.isEmpty { split.append(.text(range)) }
                    }
                    if changed { fragments = split }
                }
            }
        }
        return fragments
    }

    /// First occurrence of `needle` in `haystack[range]`.
    private static func find(_ needle: UnsafeBufferPointer<UInt8>, in haystack: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Int? {
        let m = needle.count
        guard range.count >= m else { return nil }
        let first = needle[0]
        var i = range.lowerBound
        let last = range.upperBound - m
        while i <= last {
            if haystack[i] == first {
                var k = 1
                while k < m && haystack[i + k] == needle[k] { k += 1 }
                if k == m { return i }
            }
            i += 1
        }
        return nil
    }
}
