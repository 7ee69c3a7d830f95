import Foundation

// Request and response bodies of OpenAI's completions and chat completions APIs: the fields
// the server reads and writes, and the command-line client sends and reads (both use these
// types). Unknown request fields are ignored, as OpenAI's own server does.

/// A string, or an array of them: `prompt`, `stop`.
public enum StringOrList: Codable, Sendable {
    case one(String)
    case list([String])
    /// Token ids given instead of text: `prompt: [1, 2, 3]`.
    case tokens([Int32])

    public init(from decoder: any Decoder) throws {
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

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .one(s): try c.encode(s)
        case let .list(l): try c.encode(l)
        case let .tokens(t): try c.encode(t)
        }
    }

    public var strings: [String] {
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
public struct SamplingFields: Codable, Sendable {
    public var model: String?
    public var max_tokens: Number?
    /// The chat API's newer name for `max_tokens`.
    public var max_completion_tokens: Number?
    public var temperature: Double?
    public var top_p: Double?
    public var top_k: Number?
    public var min_p: Double?
    public var repetition_penalty: Double?
    public var frequency_penalty: Double?
    public var presence_penalty: Double?
    public var seed: Number?
    public var stop: StringOrList?
    public var stream: Bool?
    public var stream_options: StreamOptions?
    public var n: Number?
    public var logprobs: LogprobsField?
    public var echo: Bool?
    public var user: String?
    /// Generate past the end-of-generation token, to exactly `max_tokens` (as llama.cpp's and
    /// vLLM's servers take it): for benchmarks.
    public var ignore_eos: Bool?

    public struct StreamOptions: Codable, Sendable {
        public var include_usage: Bool?
        public init(include_usage: Bool?) { self.include_usage = include_usage }
    }

    public init() {}
}

/// A JSON number read as a `Double`; `APIServer.integer` checks that it is whole.
public struct Number: Codable, Sendable {
    public var value: Double

    public init(_ value: Double) { self.value = value }
    public init(_ value: Int) { self.value = Double(value) }

    public init(from decoder: any Decoder) throws {
        guard let v = try? decoder.singleValueContainer().decode(Double.self) else {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "an integer"))
        }
        value = v
    }

    /// Whole numbers as integers (`16`, not `16.0`).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if value == value.rounded(), abs(value) < 9e15 { try c.encode(Int64(value)) } else { try c.encode(value) }
    }
}

/// `logprobs` is an integer in the completions API and a boolean in chat; either way, only
/// "none" is supported.
public enum LogprobsField: Codable, Sendable {
    case flag(Bool)
    case count(Int)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .flag(b); return }
        // Any number asks for some (a huge one must not trap converting to Int).
        self = .count(try c.decode(Double.self) > 0 ? 1 : 0)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .flag(b): try c.encode(b)
        case let .count(n): try c.encode(n)
        }
    }

    public var wanted: Bool {
        switch self {
        case let .flag(b): b
        case let .count(n): n > 0
        }
    }
}

public struct CompletionRequest: Codable, Sendable {
    public var prompt: StringOrList
    public var fields: SamplingFields

    enum CodingKeys: String, CodingKey { case prompt }

    public init(prompt: StringOrList, fields: SamplingFields) {
        self.prompt = prompt
        self.fields = fields
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(StringOrList.self, forKey: .prompt)
        fields = try SamplingFields(from: decoder)
    }

    /// The prompt and the fields, side by side in one object.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(prompt, forKey: .prompt)
        try fields.encode(to: encoder)
    }
}

public struct ChatRequest: Codable, Sendable {
    public var messages: [Message]
    public var fields: SamplingFields

    public struct Message: Codable, Sendable {
        public var role: String
        public var content: Content?

        public init(role: String, content: String) {
            self.role = role
            self.content = Content(text: content)
        }
    }

    /// A message's content: a string, or an array of parts of which only text is supported.
    public struct Content: Codable, Sendable {
        public var text: String

        public struct Part: Codable {
            public var type: String
            public var text: String?
        }

        public init(text: String) { self.text = text }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(text)
        }

        public init(from decoder: any Decoder) throws {
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

    public init(messages: [Message], fields: SamplingFields) {
        self.messages = messages
        self.fields = fields
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([Message].self, forKey: .messages)
        fields = try SamplingFields(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(messages, forKey: .messages)
        try fields.encode(to: encoder)
    }
}

public struct Usage: Codable, Sendable {
    public var prompt_tokens: Int
    public var completion_tokens: Int
    public var total_tokens: Int

    public init(prompt: Int, completion: Int) {
        prompt_tokens = prompt
        completion_tokens = completion
        total_tokens = prompt + completion
    }
}

/// `/v1/completions`, whole or as one streamed chunk.
public struct CompletionResponse: Codable, Sendable {
    public var id: String
    public var object = "text_completion"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?

    public struct Choice: Codable, Sendable {
        public var index = 0
        public var text: String
        public var logprobs = OrNull<String>(nil)
        public var finish_reason: OrNull<String>

        public init(text: String, finish_reason: OrNull<String>) {
            self.text = text
            self.finish_reason = finish_reason
        }
    }

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage? = nil) {
        self.id = id; self.created = created; self.model = model; self.choices = choices; self.usage = usage
    }
}

/// `/v1/chat/completions`, whole.
public struct ChatResponse: Codable, Sendable {
    public var id: String
    public var object = "chat.completion"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage

    public struct Choice: Codable, Sendable {
        public var index = 0
        public var message: Message
        public var logprobs = OrNull<String>(nil)
        public var finish_reason: String

        public init(message: Message, finish_reason: String) {
            self.message = message
            self.finish_reason = finish_reason
        }
    }

    public struct Message: Codable, Sendable {
        public var role = "assistant"
        public var content: String

        public init(content: String) { self.content = content }
    }

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage) {
        self.id = id; self.created = created; self.model = model; self.choices = choices; self.usage = usage
    }
}

/// One streamed chat chunk: the first carries the role, the last the finish reason, and with
/// `stream_options.include_usage` one more has no choices and the usage.
public struct ChatChunk: Codable, Sendable {
    public var id: String
    public var object = "chat.completion.chunk"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?

    public struct Choice: Codable, Sendable {
        public var index = 0
        public var delta: Delta
        public var logprobs = OrNull<String>(nil)
        public var finish_reason: OrNull<String>

        public init(delta: Delta, finish_reason: OrNull<String>) {
            self.delta = delta
            self.finish_reason = finish_reason
        }
    }

    public struct Delta: Codable, Sendable {
        public var role: String?
        public var content: String?

        public init(role: String? = nil, content: String?) { self.role = role; self.content = content }
    }

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage? = nil) {
        self.id = id; self.created = created; self.model = model; self.choices = choices; self.usage = usage
    }
}

/// An optional that OpenAI's answers write as `null` rather than leave out.
public struct OrNull<Wrapped: Codable & Sendable>: Codable, Sendable {
    public var value: Wrapped?

    public init(_ value: Wrapped?) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = c.decodeNil() ? nil : try c.decode(Wrapped.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

public struct ModelList: Codable, Sendable {
    public var object = "list"
    public var data: [Model]

    public struct Model: Codable, Sendable {
        public var id: String
        public var object = "model"
        public var created: Int
        public var owned_by = "strata"
        /// Tokens per sequence on this cluster.
        public var context_length: Int

        public init(id: String, created: Int, context_length: Int) {
            self.id = id; self.created = created; self.context_length = context_length
        }
    }

    public init(data: [Model]) { self.data = data }
}

/// An error answer, as OpenAI writes them: `{"error": {"message", "type", "param", "code"}}`.
public struct ErrorBody: Codable, Sendable {
    public struct Inner: Codable, Sendable {
        public var message: String
        public var type: String
        public var param: OrNull<String>
        public var code: OrNull<String>
    }

    public var error: Inner

    public init(message: String, type: String, param: String?, code: String?) {
        error = Inner(message: message, type: type, param: OrNull(param), code: OrNull(code))
    }
}
