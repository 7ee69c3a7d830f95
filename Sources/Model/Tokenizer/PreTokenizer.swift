/// How a byte-level BPE vocabulary splits text into words before merging, chosen by
/// `tokenizer.ggml.pre` as llama.cpp does (`llm_tokenizer_bpe`'s `regex_exprs`).
///
/// llama.cpp runs a list of regexes, each splitting the pieces the previous one left; the GPT-2
/// and Llama 3 patterns it runs through hand-written scanners (`unicode_regex_split_custom_*`),
/// the others through `std::regex` (a match and the text between matches each become a piece).
/// Here every step is a scanner over code points, written to give the same pieces.
enum PreTokenizer: Sendable, Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// `\p{N}` (every digit alone), then the GPT-2 pattern: SmolLM, StarCoder and relatives.
    case digitsThenGPT2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// llama.cpp's fallback for `default` or a missing name: `[\p{P}\$\+<=>\^~\|]+`, the GPT-2
    /// pattern, `\p{N}+`, `[0-9][0-9][0-9]`.
    case fallback

    /// What a pre-tokenizer name implies besides the split (llama.cpp's `llama_vocab::impl::load`).
    struct Config: Sendable {
        var kind: PreTokenizer
        /// A word that is a whole token is taken as is, without merges (Llama 3).
        var ignoreMerges = false
        /// The default for `add_bos_token` when the file has none.
        var addBOS = false
        /// Whether detokenizing applies `clean_up_tokenization_spaces` (" ," -> "," etc.).
        var cleanSpaces = true
    }

    static let supportedNames = [
        "default", "gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4",
        "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2",
        "llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "dbrx", "smaug-bpe",
    ]

    /// The configuration for `tokenizer.ggml.pre`. A missing name falls back to `default` as in
    /// llama.cpp; `gpt2` (not a name llama.cpp knows; it uses `gpt-2`) is accepted as the GPT-2
    /// split, since files name the model `gpt2`. Any other unknown name is an error.
    static func config(named name: String?) throws(TokenizerError) -> Config {
        switch name {
        case nil, "default":
            return Config(kind: .fallback)
        case "gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4":
            return Config(kind: .gpt2)
        case "smollm", "command-r":
            return Config(kind: .digitsThenGPT2, cleanSpaces: false)
        case "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2":
            return Config(kind: .digitsThenGPT2)
        case "llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2":
            return Config(kind: .llama3, ignoreMerges: true, addBOS: true)
        case "dbrx", "smaug-bpe":
            return Config(kind: .llama3)
        case let other?:
            throw .unsupportedPreTokenizer(other)
        }
    }

    /// Splits `cpts` into words; returns each word's length in code points.
    func split(_ cpts: [UInt32]) -> [Int] {
        guard !cpts.isEmpty else { return [] }
        let flags = cpts.map(CodepointFlags.of)
        let whole = [cpts.count]
        switch self {
        case .gpt2:
            return Self.gpt2(cpts, flags, whole)
        case .digitsThenGPT2:
            return Self.gpt2(cpts, flags, Self.runs(whole, single: true) { flags[$0].contains(.number) })
        case .llama3:
            return Self.llama3(cpts, flags, whole)
        case .fallback:
            var s = Self.runs(whole, single: false) { flags[$0].contains(.punctuation) || Self.isExtraPunct(cpts[$0]) }
            s = Self.gpt2(cpts, flags, s)
            s = Self.runs(s, single: false) { flags[$0].contains(.number) }
            return Self.asciiTriples(cpts, s)
        }
    }

    /// ASCII symbols the fallback's first class lists beside `\p{P}`: `$+<=>^~|`.
    private static func isExtraPunct(_ c: UInt32) -> Bool {
        c == 0x24 || c == 0x2B || c == 0x3C || c == 0x3D || c == 0x3E || c == 0x5E || c == 0x7E || c == 0x7C
    }

    // MARK: - Splitters. Each takes the pieces so far (lengths) and splits every one further.

    /// A `std::regex` step for a one-character class `[...]` (`single`) or `[...]+`: every match is
    /// a piece, and so is the text between matches. `matches` tests the code point at an index.
    private static func runs(_ segments: [Int], single: Bool, _ matches: (Int) -> Bool) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(segments.count * 2)
        var start = 0
        for length in segments {
            let end = start + length
            var pos = start
            while pos < end {
                let inClass = matches(pos)
                var next = pos + 1
                if !(inClass && single) {
                    while next < end && matches(next) == inClass { next += 1 }
                }
                out.append(next - pos)
                pos = next
            }
            start = end
        }
        return out
    }

    /// `[0-9][0-9][0-9]` by `std::regex`: leftmost triples of ASCII digits; the rest between.
    private static func asciiTriples(_ cpts: [UInt32], _ segments: [Int]) -> [Int] {
        @inline(__always) func digit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }
        var out: [Int] = []
        var start = 0
        for length in segments {
            let end = start + length
            var gapStart = start
            var pos = start
            while pos < end {
                if pos + 2 < end, digit(cpts[pos]), digit(cpts[pos + 1]), digit(cpts[pos + 2]) {
                    if pos > gapStart { out.append(pos - gapStart) }
                    out.append(3)
                    pos += 3
                    gapStart = pos
                } else {
                    pos += 1
                }
            }
            if end > gapStart { out.append(end - gapStart) }
            start = end
        }
        return out
    }

    /// A scanner over one piece: `pos` walks it, `take(end)` closes a word at `end`.
    private struct Scan {
        let cpts: [UInt32]
        let flags: [CodepointFlags]
        let start: Int
        let end: Int
        var prevEnd: Int
        var out: [Int]

        static let outOfRange: UInt32 = 0xFFFF_FFFF

        @inline(__always) func cpt(_ p: Int) -> UInt32 { p < end ? cpts[p] : Self.outOfRange }
        @inline(__always) func flag(_ p: Int) -> CodepointFlags { p < end ? flags[p] : [] }

        @inline(__always) @discardableResult
        mutating func take(_ e: Int) -> Int {
            let n = e - prevEnd
            if n > 0 { out.append(n) }
            prevEnd = e
            return n
        }

        @inline(__always) static func lower(_ c: UInt32) -> UInt32 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
    }

    private static func eachSegment(_ cpts: [UInt32], _ flags: [CodepointFlags], _ segments: [Int],
                                    _ body: (inout Scan) -> Void) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(cpts.count / 3 + segments.count)
        var start = 0
        for length in segments {
            var scan = Scan(cpts: cpts, flags: flags, start: start, end: start + length, prevEnd: start, out: out)
            out = []
            body(&scan)
            out = scan.out
            start += length
        }
        return out
    }

    /// llama.cpp's `unicode_regex_split_custom_gpt2`.
    private static func gpt2(_ cpts: [UInt32], _ flags: [CodepointFlags], _ segments: [Int]) -> [Int] {
        eachSegment(cpts, flags, segments) { s in
            var pos = s.start
            while pos < s.end {
                let c = s.cpts[pos]
                let f = s.flags[pos]
                // 's|'t|'re|'ve|'m|'ll|'d
                if c == 0x27 && pos + 1 < s.end {
                    let n1 = s.cpts[pos + 1]
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { pos += s.take(pos + 2); continue }
                    if pos + 2 < s.end {
                        let n2 = s.cpts[pos + 2]
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += s.take(pos + 3); continue
                        }
                    }
                }
                var f2 = c == 0x20 ? s.flag(pos + 1) : f
                // <space>?\p{L}+
                if f2.contains(.letter) {
                    if c == 0x20 { pos += 1 }
                    while f2.contains(.letter) { pos += 1; f2 = s.flag(pos) }
                    s.take(pos); continue
                }
                // <space>?\p{N}+
                if f2.contains(.number) {
                    if c == 0x20 { pos += 1 }
                    while f2.contains(.number) { pos += 1; f2 = s.flag(pos) }
                    s.take(pos); continue
                }
                // <space>?[^\s\p{L}\p{N}]+
                if f2.isDisjoint(with: .wordLike) && f2.contains(.defined) {
                    if c == 0x20 { pos += 1 }
                    while f2.isDisjoint(with: .wordLike) && f2.contains(.defined) { pos += 1; f2 = s.flag(pos) }
                    s.take(pos); continue
                }
                var spaces = 0
                while s.flag(pos + spaces).contains(.whitespace) { spaces += 1 }
                // \s+(?!\S)
                if spaces > 1 && s.cpt(pos + spaces) != Scan.outOfRange {
                    pos += spaces - 1
                    s.take(pos); continue
                }
                // \s+
                if spaces > 0 {
                    pos += spaces
                    s.take(pos); continue
                }
                pos += 1
                s.take(pos)
            }
        }
    }

    /// llama.cpp's `unicode_regex_split_custom_llama3`.
    private static func llama3(_ cpts: [UInt32], _ flags: [CodepointFlags], _ segments: [Int]) -> [Int] {
        eachSegment(cpts, flags, segments) { s in
            var pos = s.start
            while pos < s.end {
                let c = s.cpts[pos]
                let f = s.flags[pos]
                // (?i:'s|'t|'re|'ve|'m|'ll|'d)
                if c == 0x27 && pos + 1 < s.end {
                    let n1 = Scan.lower(s.cpts[pos + 1])
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { pos += s.take(pos + 2); continue }
                    if pos + 2 < s.end {
                        let n2 = Scan.lower(s.cpts[pos + 2])
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += s.take(pos + 3); continue
                        }
                    }
                }
                // [^\r\n\p{L}\p{N}]?\p{L}+
                if !(c == 0x0D || c == 0x0A || f.contains(.number)) {
                    if f.contains(.letter) || s.flag(pos + 1).contains(.letter) {
                        pos += 1
                        while s.flag(pos).contains(.letter) { pos += 1 }
                        s.take(pos); continue
                    }
                }
                // \p{N}{1,3}
                if f.contains(.number) {
                    var ini = pos
                    while s.flag(pos).contains(.number) {
                        pos += 1
                        if pos - ini >= 3 { s.take(pos); ini = pos }
                    }
                    s.take(pos); continue
                }
                // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the current code point's flags
                // for "defined" here, the next one's for the class)
                var f2 = c == 0x20 ? s.flag(pos + 1) : f
                if f2.isDisjoint(with: .wordLike) && f.contains(.defined) {
                    if c == 0x20 { pos += 1 }
                    while f2.isDisjoint(with: .wordLike) && f2.contains(.defined) { pos += 1; f2 = s.flag(pos) }
                    var c2 = s.cpt(pos)
                    while c2 == 0x0D || c2 == 0x0A { pos += 1; c2 = s.cpt(pos) }
                    s.take(pos); continue
                }
                var spaces = 0
                var lastLineEnd = 0
                while s.flag(pos + spaces).contains(.whitespace) {
                    let c2 = s.cpt(pos + spaces)
                    if c2 == 0x0D || c2 == 0x0A { lastLineEnd = pos + spaces + 1 }
                    spaces += 1
                }
                // \s*[\r\n]+
                if lastLineEnd > 0 {
                    pos = lastLineEnd
                    s.take(pos); continue
                }
                // \s+(?!\S)
                if spaces > 1 && s.cpt(pos + spaces) != Scan.outOfRange {
                    pos += spaces - 1
                    s.take(pos); continue
                }
                // \s+
                if spaces > 0 {
                    pos += spaces
                    s.take(pos); continue
                }
                pos += 1
                s.take(pos)
            }
        }
    }
}
