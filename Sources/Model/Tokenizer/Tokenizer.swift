/// The tokenizer a GGUF file describes, giving the same ids as llama.cpp (`llama_tokenize`,
/// `llama_detokenize`, `llama_token_to_piece`).
///
/// Two kinds, by `tokenizer.ggml.model`:
/// - `gpt2`: byte-level BPE with `tokenizer.ggml.merges`, words split first by the pre-tokenizer
///   that `tokenizer.ggml.pre` names (see `PreTokenizer`).
/// - `llama`: SentencePiece-style BPE over `tokenizer.ggml.scores`, with byte fallback `<0xNN>`,
///   spaces escaped as `▁` and a space put before the text (`tokenizer.ggml.add_space_prefix`,
///   default true) and after every special token.
///
/// Special tokens: control (type 3) and unknown (2) tokens are recognised in text only when
/// asked to (`parseSpecial`, as for chat prompts); user-defined ones (4) always, as in llama.cpp.
public final class Tokenizer: Sendable {
    enum Model: Sendable {
        case sentencePiece(SentencePieceEncoder)
        case bytePair(BytePairEncoder)
    }

    let model: Model
    /// Token texts as stored in the file (empty ones renamed `[EMPTY_<id>]`, as llama.cpp does).
    let texts: PackedStrings
    /// Token text -> id (vocabulary tokens only).
    let table: ByteTable
    let attributes: [TokenAttributes]
    let scores: [Float]
    /// The bytes each token renders as when special tokens are shown (llama.cpp's piece cache).
    let pieces: PackedStrings
    /// Tokens special-token parsing looks for, longest text first.
    let specialTokens: [Int32]
    let special: SpecialTokens
    let addSpacePrefix: Bool
    let addEOS: Bool
    let cleanSpaces: Bool

    public var vocabularySize: Int { texts.count }
    public var bosID: Int32? { special.bos }
    public var eosID: Int32? { special.eos }
    /// Whether the vocabulary wants BOS first: `tokenizer.ggml.add_bos_token`, else llama.cpp's
    /// default for the kind (true for `llama` and Llama 3's `llama-bpe`, false for other BPE).
    public let addBOS: Bool
    /// End-of-generation ids: EOS, EOT, EOM and the tokens llama.cpp recognises by text
    /// (`<|im_end|>`, `<|eot_id|>`, `<|end_of_text|>`, `<|endoftext|>`, FIM pad/repo/sep, ...).
    public var endOfGenerationIDs: Set<Int32> { special.endOfGeneration }

    public init(gguf: GGUFFile) throws {
        let modelName = try gguf.optionalString("tokenizer.ggml.model")
        guard let modelName else { throw TokenizerError.missingKey("tokenizer.ggml.model") }
        let isSPM: Bool
        switch modelName {
        case "llama": isSPM = true
        case "gpt2": isSPM = false
        default: throw TokenizerError.unsupportedModel(modelName)
        }
        // The pre-tokenizer is checked (and refused when unknown) before the big arrays are read.
        let pre = isSPM ? nil : try PreTokenizer.config(named: gguf.optionalString("tokenizer.ggml.pre"))

        guard let tokenStrings = try gguf.stringArray("tokenizer.ggml.tokens") else {
            throw TokenizerError.missingKey("tokenizer.ggml.tokens")
        }
        let n = tokenStrings.count
        guard n > 0 else { throw TokenizerError.emptyVocabulary }
        var scores = [Float](repeating: 0, count: n)
        if let s = try gguf.floatArray("tokenizer.ggml.scores") {
            guard s.count >= n else { throw TokenizerError.arrayTooShort(key: "tokenizer.ggml.scores", count: s.count, tokens: n) }
            scores = Array(s.prefix(n))
        }
        var attributes = [TokenAttributes](repeating: .normal, count: n)
        if let types = try gguf.intArray("tokenizer.ggml.token_type") {
            guard types.count >= n else {
                throw TokenizerError.arrayTooShort(key: "tokenizer.ggml.token_type", count: types.count, tokens: n)
            }
            attributes = types.prefix(n).map(TokenAttributes.init(tokenType:))
        }

        var texts = PackedStrings()
        var table = ByteTable(minimumCapacity: n)
        for (i, s) in tokenStrings.enumerated() {
            var s = s.isEmpty ? "[EMPTY_\(i)]" : s
            try s.withUTF8 { u in
                if let first = table.insert(u, value: Int32(i)) {
                    throw TokenizerError.duplicateToken(text: String(decoding: u, as: UTF8.self), firstID: Int(first), secondID: i)
                }
                texts.append(u)
            }
        }

        var defaults = SpecialTokens()
        if isSPM {
            (defaults.bos, defaults.eos, defaults.unknown) = (1, 2, 0)
        } else {
            (defaults.bos, defaults.eos) = (11, 11)
        }
        let special = try SpecialTokens(gguf: gguf, defaults: defaults, table: table, attributes: &attributes)

        addBOS = try gguf.optionalBool("tokenizer.ggml.add_bos_token") ?? (isSPM || pre?.addBOS == true)
        addEOS = try gguf.optionalBool("tokenizer.ggml.add_eos_token") ?? false
        if addBOS && special.bos == nil {
            throw TokenizerError.specialTokenMissing(flag: "tokenizer.ggml.add_bos_token", idKey: "tokenizer.ggml.bos_token_id")
        }
        if addEOS && special.eos == nil {
            throw TokenizerError.specialTokenMissing(flag: "tokenizer.ggml.add_eos_token", idKey: "tokenizer.ggml.eos_token_id")
        }
        addSpacePrefix = try gguf.optionalBool("tokenizer.ggml.add_space_prefix") ?? isSPM
        cleanSpaces = pre?.cleanSpaces ?? false

        if let pre {
            guard let merges = try gguf.stringArray("tokenizer.ggml.merges") else {
                throw TokenizerError.missingKey("tokenizer.ggml.merges")
            }
            model = .bytePair(BytePairEncoder(vocabulary: table, vocabCount: n, merges: merges, config: pre))
        } else {
            model = .sentencePiece(SentencePieceEncoder(vocabulary: table, vocabCount: n, unknownID: special.unknown))
        }

        // Longest first; equal lengths by id (llama.cpp's sort leaves their order unspecified).
        specialTokens = (0 ..< Int32(n)).filter { !attributes[Int($0)].isDisjoint(with: .parsed) }
            .sorted { a, b in
                let la = texts.length(Int(a)), lb = texts.length(Int(b))
                return la != lb ? la > lb : a < b
            }
        pieces = Self.renderPieces(texts: texts, attributes: attributes, byteLevel: !isSPM)
        self.texts = texts
        self.table = table
        self.attributes = attributes
        self.scores = scores
        self.special = special
    }

    /// What each token stands for (llama.cpp's `token_to_piece` with special tokens shown):
    /// control, unknown and user-defined tokens their text; byte tokens `<0xNN>` their byte;
    /// normal tokens their text with `▁` as space (SentencePiece) or byte-level decoded (BPE);
    /// unused and undefined tokens nothing.
    private static func renderPieces(texts: PackedStrings, attributes: [TokenAttributes], byteLevel: Bool) -> PackedStrings {
        var pieces = PackedStrings()
        var buffer: [UInt8] = []
        for id in 0 ..< texts.count {
            let text = texts[id]
            let attr = attributes[id]
            if !attr.isDisjoint(with: [.unknown, .control, .userDefined]) {
                pieces.append(text)
            } else if attr.contains(.normal) {
                if byteLevel {
                    pieces.append(text.withUnsafeBufferPointer { ByteLevel.decode($0) })
                } else {
                    buffer.removeAll(keepingCapacity: true)
                    var i = text.startIndex
                    while i < text.endIndex {
                        if text[i] == 0xE2, i + 2 < text.endIndex, text[i + 1] == 0x96, text[i + 2] == 0x81 {
                            buffer.append(0x20)
                            i += 3
                        } else {
                            buffer.append(text[i])
                            i += 1
                        }
                    }
                    pieces.append(buffer)
                }
            } else if attr.contains(.byte) {
                // `<0xNN>`: llama.cpp reads the two characters after "<0x" as hex.
                let hex = text.dropFirst(3).prefix(2)
                pieces.append(UInt8(String(decoding: hex, as: UTF8.self), radix: 16).map { [$0] } ?? [])
            } else {
                pieces.append([])
            }
        }
        return pieces
    }
}

// MARK: - Encoding

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

// MARK: - Decoding

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
