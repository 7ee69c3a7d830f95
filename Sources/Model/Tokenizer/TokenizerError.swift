/// Why a tokenizer could not be built from a GGUF file's metadata. Wrongly typed metadata values
/// surface as the reader's own `GGUFError.wrongValueType`, which names the key.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A key the tokenizer cannot do without (`tokenizer.ggml.model`, `.tokens`, `.merges`).
    case missingKey(String)
    /// `tokenizer.ggml.model` names a kind we do not implement (we do `llama` and `gpt2`).
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not implement.
    case unsupportedPreTokenizer(String)
    case emptyVocabulary
    /// A per-token array (scores, token types) shorter than the token list.
    case arrayTooShort(key: String, count: Int, tokens: Int)
    /// Two ids with the same text: lookups by text would be ambiguous.
    case duplicateToken(text: String, firstID: Int, secondID: Int)
    /// The file asks for a special token to be added (`add_bos_token`) but does not define it.
    case specialTokenMissing(flag: String, idKey: String)

    public var description: String {
        switch self {
        case let .missingKey(key):
            "tokenizer: the GGUF file has no '\(key)'"
        case let .unsupportedModel(name):
            "tokenizer: unsupported tokenizer.ggml.model '\(name)' (supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE))"
        case let .unsupportedPreTokenizer(name):
            "tokenizer: unsupported tokenizer.ggml.pre '\(name)' (supported: \(PreTokenizer.supportedNames.joined(separator: ", ")))"
        case .emptyVocabulary:
            "tokenizer: tokenizer.ggml.tokens is empty"
        case let .arrayTooShort(key, count, tokens):
            "tokenizer: '\(key)' has \(count) entries for \(tokens) tokens"
        case let .duplicateToken(text, first, second):
            "tokenizer: duplicate token '\(text)' has ids \(first) and \(second)"
        case let .specialTokenMissing(flag, idKey):
            "tokenizer: '\(flag)' is true but '\(idKey)' is not set (or out of range)"
        }
    }
}
