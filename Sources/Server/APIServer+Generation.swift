import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import StrataAPI
import StrataCoordinator
import StrataModel
import Synchronization

/// One generation request, decoded and checked: what to run and how to answer.
struct GenerationJob: Sendable {
    enum Kind: Sendable { case completion, chat }

    let kind: Kind
    let id: String
    let promptIDs: [Int32]
    let options: GenerationOptions
    let stream: Bool
    let includeUsage: Bool
    let arrived: ContinuousClock.Instant
    /// Unix time, for the answers' `created`.
    let created = Int(Date().timeIntervalSince1970)
}

extension APIServer {
    func completions(_ request: Request) async throws -> Response {
        let arrived = ContinuousClock.now
        let body: CompletionRequest = try await decode(request)
        let s = try requireServing()
        let prompt: [Int32]
        switch body.prompt {
        case let .tokens(ids):
            let vocab = s.cluster.config.vocabSize
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocab }) {
                throw APIError.invalid("prompt token \(bad) is not in the vocabulary (0..<\(vocab))", param: "prompt")
            }
            prompt = ids
        case let other:
            let texts = other.strings
            guard texts.count == 1 else {
                throw APIError.invalid("one prompt per request is supported; got \(texts.count)", param: "prompt")
            }
            prompt = encode(texts[0], s)
        }
        let job = try makeJob(.completion, prompt: prompt, body.fields, defaultMaxTokens: 16, s, arrived: arrived)
        return try await run(job, s)
    }

    func chatCompletions(_ request: Request) async throws -> Response {
        let arrived = ContinuousClock.now
        let body: ChatRequest = try await decode(request)
        let s = try requireServing()
        guard let template = s.template else {
            throw APIError.invalid("the model has no chat template this server knows; use /v1/completions", code: "no_chat_template")
        }
        guard !body.messages.isEmpty else { throw APIError.invalid("'messages' must not be empty", param: "messages") }
        var messages: [ChatMessage] = []
        for (i, m) in body.messages.enumerated() {
            let role = m.role == "developer" ? "system" : m.role
            guard ["system", "user", "assistant"].contains(role) else {
                throw APIError.invalid("messages[\(i)].role '\(m.role)' is not supported; use system, user or assistant",
                                       param: "messages[\(i)].role")
            }
            messages.append(ChatMessage(role: role, content: m.content?.text ?? ""))
        }
        let text = template.render(messages, addGenerationPrompt: true, bosToken: s.bosText, eosToken: s.eosText)
        let job = try makeJob(.chat, prompt: encode(text, s), body.fields, defaultMaxTokens: nil, s, arrived: arrived)
        return try await run(job, s)
    }

    func decode<T: Decodable>(_ request: Request) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: settings.maxRequestBytes) } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body is larger than \(settings.maxRequestBytes) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError.invalid("the request body is empty; send a JSON object") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw APIError.from(error)
        }
    }

    private func encode(_ text: String, _ s: Serving) -> [Int32] {
        let tokenizer = s.cluster.tokenizer
        return tokenizer.encode(text, addBOS: tokenizer.addBOS, parseSpecial: true)
    }

    /// Checks every field against what the cluster can do and turns them into options.
    func makeJob(_ kind: GenerationJob.Kind, prompt: [Int32], _ f: SamplingFields, defaultMaxTokens: Int?, _ s: Serving,
                 arrived: ContinuousClock.Instant) throws(APIError) -> GenerationJob {
        if let model = f.model, model != settings.modelID { throw unknownModel(model) }
        let n = try integer(f.n, "n")
        let topK = try integer(f.top_k, "top_k") ?? 0
        let seed = try integer(f.seed, "seed")
        let maxTokens = try integer(f.max_tokens, "max_tokens")
        let maxCompletionTokens = try integer(f.max_completion_tokens, "max_completion_tokens")
        if let n, n != 1 { throw .invalid("'n' must be 1: one choice per request is supported", param: "n") }
        if f.logprobs?.wanted == true { throw .invalid("'logprobs' is not supported", param: "logprobs") }
        if f.echo == true { throw .invalid("'echo' is not supported", param: "echo") }
        for (name, value) in [("frequency_penalty", f.frequency_penalty), ("presence_penalty", f.presence_penalty)] {
            if let value, value != 0 { throw .invalid("'\(name)' is not supported; use 'repetition_penalty'", param: name) }
        }
        let temperature = f.temperature ?? 1
        guard (0 ... 2).contains(temperature) else { throw .invalid("'temperature' must be between 0 and 2; got \(temperature)", param: "temperature") }
        let topP = f.top_p ?? 1
        guard topP > 0, topP <= 1 else { throw .invalid("'top_p' must be in (0, 1]; got \(topP)", param: "top_p") }
        guard topK >= 0 else { throw .invalid("'top_k' must not be negative; got \(topK)", param: "top_k") }
        let minP = f.min_p ?? 0
        guard (0 ... 1).contains(minP) else { throw .invalid("'min_p' must be between 0 and 1; got \(minP)", param: "min_p") }
        let penalty = f.repetition_penalty ?? 1
        guard penalty > 0 else { throw .invalid("'repetition_penalty' must be positive; got \(penalty)", param: "repetition_penalty") }
        let stops = f.stop?.strings ?? []
        guard stops.count <= 4 else { throw .invalid("'stop' takes at most 4 strings; got \(stops.count)", param: "stop") }
        guard !stops.contains("") else { throw .invalid("'stop' strings must not be empty", param: "stop") }

        let context = s.cluster.contextLength
        guard !prompt.isEmpty else { throw .invalid("the prompt is empty", param: "prompt") }
        guard prompt.count < context else {
            throw .invalid("the prompt has \(prompt.count) tokens; this model's context holds \(context), leaving none to generate",
                           param: kind == .chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        let maxParam = maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
        let generate: Int
        if let asked = maxCompletionTokens ?? maxTokens {
            guard asked >= 1, asked <= context else {
                throw .invalid("'\(maxParam)' must be between 1 and \(context) (the context length); got \(asked)", param: maxParam)
            }
            guard prompt.count + asked <= context else {
                throw .invalid("this model's context holds \(context) tokens, but \(prompt.count + asked) were asked for " +
                               "(\(prompt.count) in the prompt, \(asked) to generate): lower '\(maxParam)' or shorten the prompt",
                               param: maxParam, code: "context_length_exceeded")
            }
            generate = asked
        } else {
            generate = min(defaultMaxTokens ?? context, context - prompt.count)
        }
        let sampling = SamplingParameters(temperature: Float(temperature), topK: topK, topP: Float(topP), minP: Float(minP),
                                          repetitionPenalty: Float(penalty), seed: seed.map { UInt64(bitPattern: Int64($0)) })
        let prefix = kind == .chat ? "chatcmpl-" : "cmpl-"
        return GenerationJob(kind: kind, id: prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
                             promptIDs: prompt, options: GenerationOptions(maxTokens: generate, sampling: sampling, stopStrings: stops,
                                                                        stopAtEndOfGeneration: !(f.ignore_eos ?? false)),
                             stream: f.stream ?? false, includeUsage: f.stream_options?.include_usage ?? false, arrived: arrived)
    }

    /// A JSON number that must be a whole number (OpenAI's integer fields).
    func integer(_ number: Number?, _ name: String) throws(APIError) -> Int? {
        guard let value = number?.value else { return nil }
        guard value == value.rounded(), abs(value) < 9e15 else {
            throw .invalid("'\(name)' must be an integer; got \(value)", param: name)
        }
        return Int(value)
    }

    // MARK: Running

    /// Hands the job to the cluster and answers, whole or streamed. Whoever stops listening
    /// (a cancelled task, a closed connection) stops the sequence: the cluster's stream of
    /// events ends its request when its reader goes away.
    func run(_ job: GenerationJob, _ s: Serving) async throws -> Response {
        let events: AsyncThrowingStream<GenerationEvent, any Error>
        do { events = try s.cluster.submit(promptIDs: job.promptIDs, options: job.options) } catch {
            throw APIError.from(error)
        }
        let timer = TokenTimer(job: job, metrics: metrics)
        timer.logger.debug("\(job.promptIDs.count) prompt tokens, up to \(job.options.maxTokens) to generate")
        if job.stream { return streamResponse(job, events, timer) }
        do {
            for try await event in events {
                switch event {
                case .token: timer.token()
                case let .finished(r):
                    timer.finished(r, cancelled: false)
                    return answer(job, r)
                }
            }
        } catch let error as ClusterError {
            timer.logger.warning("failed: \(error)")
            throw APIError.from(error)
        }
        throw APIError(.internalServerError, "the generation ended without an answer")
    }

    private func answer(_ job: GenerationJob, _ r: GenerationResult) -> Response {
        let usage = Usage(prompt: r.promptIDs.count, completion: r.generatedIDs.count)
        switch job.kind {
        case .completion:
            return json(CompletionResponse(id: job.id, created: job.created, model: settings.modelID,
                                           choices: [.init(text: r.text, finish_reason: .init(r.finishReason.rawValue))], usage: usage))
        case .chat:
            return json(ChatResponse(id: job.id, created: job.created, model: settings.modelID,
                                     choices: [.init(message: .init(content: r.text), finish_reason: r.finishReason.rawValue)],
                                     usage: usage))
        }
    }

    /// Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`. A write that
    /// fails (the client went away) cancels the sequence, which frees its KV cache. While
    /// nothing else is written (waiting in line, a long prompt) a comment line goes out every
    /// `keepAlive`: it keeps proxies from timing the stream out, and finds a client that left
    /// before its first token.
    private func streamResponse(_ job: GenerationJob, _ events: AsyncThrowingStream<GenerationEvent, any Error>,
                                _ timer: TokenTimer) -> Response {
        let created = job.created
        let model = settings.modelID
        let keepAlive = Self.keepAlive
        let body = ResponseBody { writer in
            let (deliveries, continuation) = AsyncStream.makeStream(of: Delivery.self)
            // The cluster's events and the keep-alive ticks, in one line. Cancelling `pump`
            // (when this body ends, however it ends) stops the request if it is still running.
            let pump = Task {
                do {
                    for try await event in events { continuation.yield(.event(event)) }
                } catch {
                    continuation.yield(.failed(error as? ClusterError ?? .cancelled))
                }
                continuation.finish()
            }
            defer { pump.cancel() }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: keepAlive)
                    continuation.yield(.keepAlive)
                }
            }
            defer { ticker.cancel() }
            var lastWrite = ContinuousClock.now
            func write(_ buffer: ByteBuffer) async throws {
                try await writer.write(buffer)
                lastWrite = .now
            }
            func send(_ value: some Encodable) async throws {
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(encodeJSON(value))
                buffer.writeString("\n\n")
                try await write(buffer)
            }
            func chunk(_ text: String?, role: String? = nil, finish: String? = nil) -> any Encodable {
                switch job.kind {
                case .completion:
                    return CompletionResponse(id: job.id, created: created, model: model,
                                              choices: [.init(text: text ?? "", finish_reason: .init(finish))])
                case .chat:
                    return ChatChunk(id: job.id, created: created, model: model,
                                     choices: [.init(delta: .init(role: role, content: text), finish_reason: .init(finish))])
                }
            }
            do {
                if job.kind == .chat { try await send(chunk("", role: "assistant")) }
                for await delivery in deliveries {
                    let event: GenerationEvent
                    switch delivery {
                    case .keepAlive:
                        if ContinuousClock.now - lastWrite >= keepAlive { try await write(ByteBuffer(string: ": keep-alive\n\n")) }
                        continue
                    case let .failed(e):
                        timer.logger.warning("failed: \(e)")
                        try await send(APIError.from(e).body)
                        continue
                    case let .event(e):
                        event = e
                    }
                    switch event {
                    case let .token(_, text):
                        timer.token()
                        if !text.isEmpty { try await send(chunk(text)) }
                    case let .finished(r):
                        timer.finished(r, cancelled: false)
                        try await send(chunk(job.kind == .chat ? nil : "", finish: r.finishReason.rawValue))
                        if job.includeUsage {
                            let usage = Usage(prompt: r.promptIDs.count, completion: r.generatedIDs.count)
                            switch job.kind {
                            case .completion:
                                try await send(CompletionResponse(id: job.id, created: created, model: model, choices: [], usage: usage))
                            case .chat:
                                try await send(ChatChunk(id: job.id, created: created, model: model, choices: [], usage: usage))
                            }
                        }
                    }
                }
                try await write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                timer.cancelled()
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// What a streamed answer writes: the cluster's events, how the request failed, and a tick
/// now and then to keep the connection alive.
enum Delivery: Sendable {
    case event(GenerationEvent)
    case failed(ClusterError)
    case keepAlive
}

extension APIServer {
    /// Quiet time after which a streamed answer sends a comment line.
    static var keepAlive: Duration { .seconds(1) }
}

/// Times one request's tokens for the latency histograms, and counts and logs it (with its
/// `request.id`) when it ends.
final class TokenTimer: Sendable {
    private let job: GenerationJob
    private let metrics: ServerMetrics
    let logger: Logger
    private let state = Mutex<(last: ContinuousClock.Instant?, tokens: Int, counted: Bool)>((nil, 0, false))

    init(job: GenerationJob, metrics: ServerMetrics) {
        self.job = job
        self.metrics = metrics
        var logger = Logger(label: "strata.http")
        logger[metadataKey: "request.id"] = "\(job.id)"
        self.logger = logger
    }

    func token() {
        let now = ContinuousClock.now
        let previous = state.withLock { s -> ContinuousClock.Instant? in
            defer { s.last = now; s.tokens += 1 }
            return s.last
        }
        if let previous { metrics.nextToken(after: now - previous) } else { metrics.firstToken(after: now - job.arrived) }
    }

    func finished(_ r: GenerationResult, cancelled: Bool) {
        guard state.withLock({ s in defer { s.counted = true }; return !s.counted }) else { return }
        let duration = ContinuousClock.now - job.arrived
        metrics.generation(promptTokens: r.promptIDs.count, generatedTokens: r.generatedIDs.count, duration: duration, cancelled: cancelled)
        logger.info("\(r.promptIDs.count) prompt tokens, \(r.generatedIDs.count) generated (\(r.finishReason.rawValue)) in \(duration)")
    }

    /// The client went away before the end.
    func cancelled() {
        let tokens = state.withLock { s -> Int? in
            defer { s.counted = true }
            return s.counted ? nil : s.tokens
        }
        guard let tokens else { return }
        metrics.generation(promptTokens: job.promptIDs.count, generatedTokens: tokens, duration: .now - job.arrived, cancelled: true)
        logger.info("the client went away after \(tokens) tokens")
    }
}

