import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import StrataAPI
import StrataModel
import Synchronization

/// The client for a coordinator's API (`--server`), on AsyncHTTPClient: requests and answers
/// are the server's own types (`StrataAPI`), streamed answers are read event by event as they
/// arrive.
struct APIClient {
    /// The server's URL without a trailing slash or `/v1`: paths are appended to it.
    let base: String
    let apiKey: String?
    private let http: HTTPClient

    /// `caFile`: certificates (PEM) that an https:// server's certificate must chain to,
    /// instead of the system's.
    init(server: String, apiKey: String?, caFile: String? = nil) throws {
        guard let url = URL(string: server), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ValidationError("--server '\(server)': expected a URL such as http://127.0.0.1:8080")
        }
        guard scheme == "http" || scheme == "https" else { throw ValidationError("--server '\(server)': expected http:// or https://") }
        var base = server
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        self.base = base
        self.apiKey = apiKey ?? ProcessInfo.processInfo.environment["STRATA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if let caFile {
            guard scheme == "https" else { throw ValidationError("--ca-file is for an https:// server") }
            http = try Self.client(trusting: caFile)
        } else {
            http = Self.shared
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A whole answer, decoded; a non-2xx answer becomes an error carrying the server's message.
    func get<Answer: Decodable>(_ path: String, as: Answer.Type) async throws -> Answer {
        let response = try await execute(request(path))
        let body = try await response.body.collect(upTo: 64 << 20)
        try Self.check(response.status, body)
        return try JSONDecoder().decode(Answer.self, from: Data(buffer: body))
    }

    /// Posts `body` (which asks for a stream) and hands each event's `data`, decoded as `Event`,
    /// to `onEvent` until `[DONE]`. An error event ends it with the server's message.
    func stream<Event: Decodable>(_ path: String, _ body: some Encodable, as: Event.Type, onEvent: (Event) throws -> Void) async throws {
        var request = request(path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await execute(request)
        guard (200 ..< 300).contains(response.status.code) else {
            try Self.check(response.status, try await response.body.collect(upTo: 1 << 20))
            return
        }
        var events = ServerSentEvents()
        for try await buffer in response.body {
            for data in events.feed(buffer.readableBytesView) {
                if data == "[DONE]" { return }
                let json = Data(data.utf8)
                if let error = try? JSONDecoder().decode(ErrorBody.self, from: json) { throw Failure(description: error.error.message) }
                try onEvent(try JSONDecoder().decode(Event.self, from: json))
            }
        }
        throw Failure(description: "\(base) closed the stream before its end")
    }

    private func request(_ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        return request
    }

    /// One client for the process (never shut down, as `HTTPClient.shared`), which gives up on
    /// a server that refuses the connection at once rather than retrying until a timeout. Its
    /// pool opens a connection per request under way (streams hold theirs to the end), up to
    /// 256, rather than the default 8 that would make the ninth request wait for the first.
    private static let shared = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration())

    private static func configuration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        return configuration
    }

    /// Clients that trust a CA file, one per file for the life of the process (as `shared`).
    private static let trusting = Mutex<[String: HTTPClient]>([:])

    private static func client(trusting caFile: String) throws -> HTTPClient {
        let roots: [NIOSSLCertificate]
        do { roots = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw ValidationError("--ca-file \(caFile): not a readable PEM certificate (\(error))")
        }
        guard !roots.isEmpty else { throw ValidationError("--ca-file \(caFile) holds no certificate") }
        return trusting.withLock { clients in
            if let client = clients[caFile] { return client }
            var configuration = configuration()
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(roots)
            configuration.tlsConfiguration = tls
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[caFile] = client
            return client
        }
    }

    private func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: .hours(24))
        } catch {
            throw Failure(description: "cannot reach \(base): \(error) (is `strata coordinator --http …` running there?)")
        }
    }

    private static func check(_ status: HTTPResponseStatus, _ body: ByteBuffer) throws {
        guard !(200 ..< 300).contains(status.code) else { return }
        let message = (try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: body)))?.error.message
            ?? String(buffer: body).prefix(500).description
        throw Failure(description: "the server answered \(status.code): \(message)")
    }
}

/// Server-sent events from a stream of bytes: each event's `data` lines, joined, once the blank
/// line that ends it has arrived. (Comments, such as keep-alives, carry no data.)
struct ServerSentEvents {
    private var pending: [UInt8] = []

    /// Takes the next bytes; returns the data of every event they complete.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        pending += bytes
        var out: [String] = []
        while let end = Self.eventEnd(pending) {
            let event = String(decoding: pending[..<end.start], as: UTF8.self)
            pending.removeSubrange(..<end.next)
            let data = event.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).compactMap { line -> Substring? in
                guard line.hasPrefix("data:") else { return nil }
                let value = line.dropFirst(5)
                return value.first == " " ? value.dropFirst() : value
            }
            if !data.isEmpty { out.append(data.joined(separator: "\n")) }
        }
        return out
    }

    private static func eventEnd(_ bytes: [UInt8]) -> (start: Int, next: Int)? {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 10 && bytes[i + 1] == 10 { return (i, i + 2) }
            if i + 3 < bytes.count, bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { return (i, i + 4) }
            i += 1
        }
        return nil
    }
}

/// `--server` and `--api-key`, for the commands that can talk to a running coordinator.
struct ClientOptions: ParsableArguments {
    @Option(help: "Use a running coordinator's HTTP API at this URL (e.g. http://127.0.0.1:8080) instead of loading the model here.")
    var server: String?

    @Option(help: "API key for --server (default: $STRATA_API_KEY).")
    var apiKey: String?

    @Option(help: "With an https:// --server: trust the certificates in this PEM file (a private CA, or the server's own) instead of the system's.")
    var caFile: String?

    func client() throws -> APIClient? {
        guard let server else { return nil }
        return try APIClient(server: server, apiKey: apiKey, caFile: caFile)
    }
}

extension SamplingOptions {
    /// The request fields these flags stand for.
    var requestFields: SamplingFields {
        var f = SamplingFields()
        f.max_tokens = Number(maxTokens)
        f.temperature = Double(temperature)
        f.top_k = Number(topK)
        f.top_p = Double(topP)
        f.min_p = Double(minP)
        f.repetition_penalty = Double(repeatPenalty)
        if let seed { f.seed = Number(Double(Int64(bitPattern: seed))) }
        if !stops.isEmpty { f.stop = .list(stops) }
        return f
    }
}

/// One streamed generation through a coordinator's API: prints the text as it comes and
/// measures what a client sees.
struct RemoteGeneration {
    var text = ""
    var finishReason = ""
    var promptTokens = 0
    var completionTokens = 0
    /// From sending the request to the first text.
    var firstTokenSeconds = 0.0
    /// From the first text to the last event.
    var decodeSeconds = 0.0

    /// Tokens after the first, per second.
    var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(0, completionTokens - 1)) / decodeSeconds : 0 }

    /// A chat completion of `messages`, or a completion of `prompt`, streamed with its usage.
    static func run(_ client: APIClient, chat messages: [ChatRequest.Message]?, prompt: StringOrList?, fields: SamplingFields,
                    onText: (String) -> Void) async throws -> RemoteGeneration {
        var fields = fields
        fields.stream = true
        fields.stream_options = .init(include_usage: true)
        var out = RemoteGeneration()
        let start = ContinuousClock.now
        var first: ContinuousClock.Instant?
        func take(_ piece: String?, finish: String?, usage: Usage?) {
            if let usage {
                out.promptTokens = usage.prompt_tokens
                out.completionTokens = usage.completion_tokens
            }
            if let piece, !piece.isEmpty {
                if first == nil { first = .now }
                out.text += piece
                onText(piece)
            }
            if let finish { out.finishReason = finish }
        }
        if let messages {
            try await client.stream("/v1/chat/completions", ChatRequest(messages: messages, fields: fields), as: ChatChunk.self) { chunk in
                take(chunk.choices.first?.delta.content, finish: chunk.choices.first?.finish_reason.value, usage: chunk.usage)
            }
        } else {
            try await client.stream("/v1/completions", CompletionRequest(prompt: prompt ?? .one(""), fields: fields),
                                    as: CompletionResponse.self) { chunk in
                take(chunk.choices.first?.text, finish: chunk.choices.first?.finish_reason.value, usage: chunk.usage)
            }
        }
        let end = ContinuousClock.now
        out.firstTokenSeconds = ((first ?? end) - start).totalSeconds
        out.decodeSeconds = (end - (first ?? end)).totalSeconds
        return out
    }

    var summary: String {
        String(format: "prompt: %d tokens, first token after %.0f ms; decode: %d tokens, %.1f tokens/s\n",
               promptTokens, firstTokenSeconds * 1000, completionTokens, decodeTokensPerSecond)
    }
}
