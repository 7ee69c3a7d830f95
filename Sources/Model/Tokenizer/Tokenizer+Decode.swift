extension Tokenizer {
    /// The raw bytes token `id` stands for: byte-level BPE decoded, SentencePiece `▁` as a space,
    /// `<0xNN>` as its byte; control and unknown tokens as their text only with `includeSpecial`
    /// (user-defined tokens always). Nothing for an id outside the vocabulary.
    public func tokenBytes(_ id: Int32, includeSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < texts.count else { return [] }
        if !includeSpecial && !attributes[Int(id)].isDisjoint(with: .hidden) { return [] }
        return Array(pieces[Int(id)])
    }

    /// Text for `ids` as llama.cpp's `llama_detokenize` gives it (special tokens kept in place, not
    /// stripped at the ends): with `tokenizer.ggml.add_space_prefix` the first token's leading
    /// space is dropped (the one SentencePiece put there; a leading BOS, shown or not, uses up
    /// that drop, so llama.cpp keeps the space after it), and vocabularies that ask for it
    /// (Llama 3, GPT-2; not SmolLM) get `clean_up_tokenization_spaces` (" ," -> ","). Invalid
    /// UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int32], includeSpecial: Bool = true) -> String {
        var out: [UInt8] = []
        var removeSpace = addSpacePrefix
        for id in ids {
            var piece = tokenBytes(id, includeSpecial: includeSpecial)[...]
            if removeSpace && piece.first == 0x20 { piece = piece.dropFirst() }
            removeSpace = false
            out.append(contentsOf: piece)
        }
        if cleanSpaces { out = Self.cleanUpSpaces(out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// llama.cpp's three clean-up passes: drop the space before `?!.,`; turn " ' " into "'";
    /// drop the space before `'s 'm 're 've`.
    static func cleanUpSpaces(_ text: [UInt8]) -> [UInt8] {
        let space: UInt8 = 0x20, quote: UInt8 = 0x27
        guard text.count > 1 else { return text }
        var t = text
        var out: [UInt8] = [t[0]]
        for i in 1 ..< t.count {
            let x = t[i]
            if t[i - 1] == space && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { out.removeLast() }
            out.append(x)
        }
        t = out
        out = [t[0]]
        var i = 1
        while i < t.count {
            let x = t[i]
            if x == quote && i + 1 < t.count && t[i - 1] == space && t[i + 1] == space {
                out.removeLast()
                i += 1
                t[i] = 0  // the space after is skipped, and no longer a space for the next test
            }
            out.append(x)
            i += 1
        }
        t = out
        out = [t[0]]
        for i in 1 ..< t.count {
            let x = t[i]
            if t[i - 1] == space && x == quote && i + 1 < t.count {
                let x1 = t[i + 1]
                if x1 == 0x73 || x1 == 0x6D {  // 's 'm
                    out.removeLast()
                } else if x1 != 0x74 && x1 != 0x64 && i + 2 < t.count {  // not 't 'd
                    let x2 = t[i + 2]
                    if (x1 == 0x72 && x2 == 0x65) || (x1 == 0x76 && x2 == 0x65) { out.removeLast() }  // 're 've
                }
            }
            out.append(x)
        }
        return out
    }

    /// The token's text as stored in the vocabulary (`Ġhello`, `▁hello`, `<0x0A>`, `<|im_end|>`).
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < texts.count else { return nil }
        return String(decoding: texts[Int(id)], as: UTF8.self)
    }

    /// The id whose vocabulary text is exactly `forTokenText` (compared byte for byte).
    public func id(forTokenText text: String) -> Int32? {
        var text = text
        return text.withUTF8 { table.find($0) }
    }
}
