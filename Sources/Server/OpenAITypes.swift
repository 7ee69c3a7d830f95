import Foundation

// Request and response bodies of OpenAI's completions and chat completions APIs, the fields
// this server reads and writes. Unknown request fields are ignored, as OpenAI's own server does.

/// A string, or an array of them: `prompt`, `stop`.
enum StringOrList: Decodable, Sendable {
    case one(String)
    case list([String])
    /// Token ids given instead of text: `prompt: [1, 2, 3]`.
    case tokens([Int32])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .one(s); return }
        if let l = try? c.decode([String].self) { self = .list(l); return }
        if let t = try? c.decode([Int32].self) { self = .tokens(t); return }
        if let nested = try? c.decode([[Int32]].self) {
            guard nested.count == 1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "one prompt per request is supported"))
            }
            self = .tokens(nested[0])
            return
        }
        throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath,
                                                           debugDescription: "a string, an array of strings or an array of token ids"))
    }

    var strings: [String] {
        switch self {
        case let .one(s): [s]
        case let .list(l): l
        case .tokens: []
        }
    }
}

/// The sampling and length fields both endpoints share. Integer fields are read as numbers and
/// checked by `APIServer.integer`: Foundation's decoder on Linux reports 2.5 for an `Int` as
/// invalid JSON, without saying which field.
struct SamplingFields: Decodable, Sendable {
    var model: String?
    var max_tokens: Number?
    /// The chat API's newer name for `max_tokens`.
    var max_completion_tokens: Number?
    var temperature: Double?
    var top_p: Double?
    var top_k: Number?
    var min_p: Double?
    var repetition_penalty: Double?
    var frequency_penalty: Double?
    var presence_penalty: Double?
    var seed: Number?
    var stop: StringOrList?
    var stream: Bool?
    var stream_options: StreamOptions?
    var n: Number?
    var logprobs: LogprobsField?
    var echo: Bool?
    var user: String?
    /// Generate past the end-of-generation token, to exactly `max_tokens` (as llama.cpp's and
    /// vLLM's servers take it): for benchmarks.
    var ignore_eos: Bool?

    struct StreamOptions: Decodable, Sendable {
        var include_usage: Bool?
    }
}

/// A JSON number read as a `Double`; `APIServer.integer` checks that it is whole.
struct Number: Decodable, Sendable {
    var value: Double

    init(from decoder: any Decoder) throws {
        guard let v = try? decoder.singleValueContainer().decode(Double.self) else {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "an integer"))
        }
        value = v
    }
}

/// `logprobs` is an integer in the completions API and a boolean in chat; either way, only
/// "none" is supported.
enum LogprobsField: Decodable, Sendable {
    case flag(Bool)
    case count(Int)

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .flag(b); return }
        // Any number asks for some (a huge one must not trap converting to Int).
        self = .count(try c.decode(Double.self) > 0 ? 1 : 0)
    }

    var wanted: Bool {
        switch self {
        case let .flag(b): b
        case let .count(n): n > 0
        }
    }
}

struct CompletionRequest: Decodable, Sendable {
    var prompt: StringOrList
    var fields: SamplingFields

    enum CodingKeys: String, CodingKey { case prompt }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(StringOrList.self, forKey: .prompt)
        fields = try SamplingFields(from: decoder)
    }
}

struct ChatRequest: Decodable, Sendable {
    var messages: [Message]
    var fields: SamplingFields

    struct Message: Decodable, Sendable {
        var role: String
        var content: Content?
    }

    /// A message's content: a string, or an array of parts of which only text is supported.
    struct Content: Decodable, Sendable {
        var text: String

        struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { text = s; return }
            guard let parts = try? c.decode([Part].self) else {
                throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath,
                                                                   debugDescription: "a string or an array of content parts"))
            }
            if let other = parts.first(where: { $0.type != "text" }) {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "content parts of type '\(other.type)' are not supported; only 'text'"))
            }
            text = parts.compactMap(\.text).joined()
        }
    }

    enum CodingKeys: String, CodingKey { case messages }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([Message].self, forKey: .messages)
        fields = try SamplingFields(from: decoder)
    }
}

struct Usage: Encodable, Sendable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int

    init(prompt: Int, completion: Int) {
        prompt_tokens = prompt
        completion_tokens = completion
        total_tokens = prompt + completion
    }
}

/// `/v1/completions`, whole or as one streamed chunk.
struct CompletionResponse: Encodable, Sendable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?

    struct Choice: Encodable, Sendable {
        var index = 0
        var text: String
        var logprobs = OrNull<String>(nil)
        var finish_reason: OrNull<String>
    }
}

/// `/v1/chat/completions`, whole.
struct ChatResponse: Encodable, Sendable {
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage

    struct Choice: Encodable, Sendable {
        var index = 0
        var message: Message
        var logprobs = OrNull<String>(nil)
        var finish_reason: String
    }

    struct Message: Encodable, Sendable {
        var role = "assistant"
        var content: String
    }
}

/// One streamed chat chunk: the first carries the role, the last the finish reason, and with
/// `stream_options.include_usage` one more has no choices and the usage.
struct ChatChunk: Encodable, Sendable {
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?

    struct Choice: Encodable, Sendable {
        var index = 0
        var delta: Delta
        var logprobs = OrNull<String>(nil)
        var finish_reason: OrNull<String>
    }

    struct Delta: Encodable, Sendable {
        var role: String?
        var content: String?
    }
}

/// An optional that OpenAI's answers write as `null` rather than leave out.
struct OrNull<Wrapped: Encodable & Sendable>: Encodable, Sendable {
    var value: Wrapped?

    init(_ value: Wrapped?) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

struct ModelList: Encodable, Sendable {
    var object = "list"
    var data: [Model]

    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var owned_by = "strata"
        /// Tokens per sequence on this cluster.
        var context_length: Int
    }
}
