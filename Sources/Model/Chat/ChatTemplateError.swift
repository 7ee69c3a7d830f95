/// Why no chat template could be chosen; each message lists the names `--chat-template` accepts.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// `--chat-template` named no template Strata knows.
    case unknownName(String, accepted: [String])
    /// The model has no `tokenizer.chat_template` (and no name was given).
    case missingTemplate(accepted: [String])
    /// The model's Jinja template matched none of the known formats; `excerpt` is its start.
    case unrecognizedTemplate(excerpt: String, truncated: Bool, accepted: [String])

    /// How much of an unrecognized template the message quotes.
    static let excerptLength = 60

    public var description: String {
        switch self {
        case let .unknownName(name, accepted):
            return "unknown chat template name '\(name)'; accepted names: "
                + accepted.joined(separator: ", ")
        case let .missingTemplate(accepted):
            return "the model has no chat template (GGUF key tokenizer.chat_template is missing); "
                + "choose one with --chat-template: " + accepted.joined(separator: ", ")
        case let .unrecognizedTemplate(excerpt, truncated, accepted):
            // Escaped so a multi-line template stays on one line of the error message.
            let quoted = excerpt.unicodeScalars.map { scalar -> String in
                switch scalar {
                case "\n": "\\n"
                case "\r": "\\r"
                case "\t": "\\t"
                default: String(scalar)
                }
            }.joined()
            return "unrecognized chat template \"\(quoted)\(truncated ? "…" : "")\"; "
                + "choose one with --chat-template: " + accepted.joined(separator: ", ")
        }
    }
}
