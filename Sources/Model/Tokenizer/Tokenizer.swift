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
