/// llama.cpp's token attributes, from `tokenizer.ggml.token_type` plus its own corrections.
struct TokenAttributes: OptionSet, Sendable {
    let rawValue: UInt16
    static let unknown = TokenAttributes(rawValue: 1 << 0)
    static let unused = TokenAttributes(rawValue: 1 << 1)
    static let normal = TokenAttributes(rawValue: 1 << 2)
    static let control = TokenAttributes(rawValue: 1 << 3)
    static let userDefined = TokenAttributes(rawValue: 1 << 4)
    static let byte = TokenAttributes(rawValue: 1 << 5)

    /// Tokens that special-token parsing looks for in text.
    static let parsed: TokenAttributes = [.control, .userDefined, .unknown]
    /// Tokens rendered only when special tokens are asked for.
    static let hidden: TokenAttributes = [.control, .unknown]

    /// GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    init(tokenType: Int) {
        switch tokenType {
        case 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = []
        }
    }

    init(rawValue: UInt16) { self.rawValue = rawValue }
}

/// Byte strings stored back to back: string `i` spans `bytes[offsets[i] ..< offsets[i + 1]]`.
struct PackedStrings: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var offsets: [Int] = [0]

    var count: Int { offsets.count - 1 }

    mutating func append<C: Collection>(_ s: C) where C.Element == UInt8 {
        bytes.append(contentsOf: s)
        offsets.append(bytes.count)
    }

    subscript(i: Int) -> ArraySlice<UInt8> { bytes[offsets[i] ..< offsets[i + 1]] }

    func length(_ i: Int) -> Int { offsets[i + 1] - offsets[i] }
}

/// The special token ids llama.cpp reads or guesses (`llama_vocab::impl::load`).
struct SpecialTokens: Sendable {
    var bos: Int32?
    var eos: Int32?
    var eot: Int32?
    var eom: Int32?
    var unknown: Int32?
    var fimPre: Int32?, fimSuf: Int32?, fimMid: Int32?, fimPad: Int32?, fimRep: Int32?, fimSep: Int32?
    /// Every id that ends generation.
    var endOfGeneration: Set<Int32> = []

    private static var keys: [(String, WritableKeyPath<SpecialTokens, Int32?>)] { [
        ("tokenizer.ggml.bos_token_id", \.bos),
        ("tokenizer.ggml.eos_token_id", \.eos),
        ("tokenizer.ggml.eot_token_id", \.eot),
        ("tokenizer.ggml.eom_token_id", \.eom),
        ("tokenizer.ggml.unknown_token_id", \.unknown),
        ("tokenizer.ggml.fim_pre_token_id", \.fimPre),
        ("tokenizer.ggml.fim_suf_token_id", \.fimSuf),
        ("tokenizer.ggml.fim_mid_token_id", \.fimMid),
        ("tokenizer.ggml.fim_pad_token_id", \.fimPad),
        ("tokenizer.ggml.fim_rep_token_id", \.fimRep),
        ("tokenizer.ggml.fim_sep_token_id", \.fimSep),
        // deprecated names
        ("tokenizer.ggml.prefix_token_id", \.fimPre),
        ("tokenizer.ggml.suffix_token_id", \.fimSuf),
        ("tokenizer.ggml.middle_token_id", \.fimMid),
    ] }

    // Texts llama.cpp recognises when the file does not name the token.
    private static let eotTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                                   "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"]
    private static let eomTexts = ["<|eom_id|>"]
    private static let fimPreTexts = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                                      "<|code_prefix|>", "<|prefix|>"]
    private static let fimSufTexts = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                                      "<|code_suffix|>", "<|suffix|>"]
    private static let fimMidTexts = ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                                      "<|code_middle|>", "<|middle|>"]
    private static let fimPadTexts = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
    private static let fimRepTexts = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
    private static let fimSepTexts = ["<|file_sep|>"]
    private static let eogTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                                   "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                                   "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                   "<｜end▁of▁sentence｜>", "[e~["]
    /// gpt-oss tokens llama.cpp always renders (it makes them user-defined).
    private static let alwaysRenderedTexts = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

    /// Reads the ids from `gguf` over the defaults, then guesses the unnamed ones from token texts
    /// and marks what it finds as control tokens, as llama.cpp does.
    init(gguf: GGUFFile, defaults: SpecialTokens, table: ByteTable, attributes: inout [TokenAttributes]) throws {
        self = defaults
        let n = attributes.count
        for (key, path) in Self.keys {
            if let id = self[keyPath: path], id < 0 || Int(id) >= n { self[keyPath: path] = nil }
            if let v = try gguf.optionalInt(key), v >= 0, v < n { self[keyPath: path] = Int32(v) }
        }

        // Present ids of a text list, lowest id first.
        func ids(_ texts: [String]) -> [Int32] {
            texts.compactMap { t in table.find(Array(t.utf8)).flatMap { Int($0) < n ? $0 : nil } }.sorted()
        }
        func markControl(_ id: Int32) { attributes[Int(id)].insert(.control) }
        let guessed: [(WritableKeyPath<SpecialTokens, Int32?>, [String])] = [
            (\.eot, Self.eotTexts), (\.eom, Self.eomTexts), (\.fimPre, Self.fimPreTexts), (\.fimSuf, Self.fimSufTexts),
            (\.fimMid, Self.fimMidTexts), (\.fimPad, Self.fimPadTexts), (\.fimRep, Self.fimRepTexts), (\.fimSep, Self.fimSepTexts),
        ]
        for (path, texts) in guessed where self[keyPath: path] == nil {
            if let id = ids(texts).first {
                self[keyPath: path] = id
                markControl(id)
            }
        }

        var eog = Set([fimPad, fimRep, fimSep].compactMap { $0 })
        for id in ids(Self.eogTexts) {
            eog.insert(id)
            markControl(id)
        }
        for id in ids(Self.alwaysRenderedTexts) { attributes[Int(id)] = .userDefined }
        eog.formUnion([eos, eot, eom].compactMap { $0 })

        // o200k_harmony / solar-open: "<|end|>" ends a message, not generation.
        func has(_ text: String) -> Int32? { table.find(Array(text.utf8)).flatMap { eog.contains($0) ? $0 : nil } }
        let hasCall = has("<|call|>") != nil || has("<|calls|>") != nil
        if let end = has("<|end|>"), hasCall, has("<|return|>") != nil || has("<|flush|>") != nil {
            eog.remove(end)
            attributes[Int(end)] = .userDefined
        }
        endOfGeneration = eog
    }

    init() {}
}
