import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for a coordinator's API (`--server`): one request per connection,
/// the answer's body handed over as it arrives, so streamed events print as they come.
/// Plain http only: put TLS in front of a server with a proxy.
struct APIClient {
    let host: String
    let port: Int
    /// Path prefix of the server's URL, without a trailing slash ("" for the root).
    let basePath: String
    let apiKey: String?

    init(server: String, apiKey: String?) throws {
        guard let url = URL(string: server), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ValidationError("--server '\(server)': expected a URL such as http://127.0.0.1:8080")
        }
        guard scheme == "http" else { throw ValidationError("--server '\(server)': only http:// is supported") }
        self.host = host
        port = url.port ?? 80
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix("/v1") { path.removeLast(3) }
        basePath = path
        self.apiKey = apiKey ?? ProcessInfo.processInfo.environment["STRATA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends one request; `onBody` receives the answer's status and its body in pieces.
    /// Returns the status.
    func send(_ method: HTTPMethod, _ path: String, json: [UInt8]? = nil,
              onBody: (_ status: Int, ByteBuffer) throws -> Void) async throws -> Int {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Failure(description: "cannot reach \(host):\(port): \(error) (is `strata coordinator --http …` running there?)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: basePath + path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "Connection", value: "close")
            head.headers.add(name: "Accept", value: "application/json, text/event-stream")
            if let apiKey { head.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            if let json {
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(json.count))
            }
            try await outbound.write(.head(head))
            if let json { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: json)))) }
            try await outbound.write(.end(nil))
            var status = 0
            for try await part in inbound {
                switch part {
                case let .head(h): status = Int(h.status.code)
                case let .body(buffer): try onBody(status, buffer)
                case .end: return status
                }
            }
            throw Failure(description: "\(host):\(port) closed the connection before the answer ended")
        }
    }

    /// A whole answer, decoded; a non-2xx answer becomes an error carrying the server's message.
    func get<T: Decodable>(_ path: String, as: T.Type) async throws -> T {
        var body: [UInt8] = []
        let status = try await send(.GET, path) { body += $1.readableBytesView }
        try Self.check(status, body)
        return try JSONDecoder().decode(T.self, from: Data(body))
    }

    /// Posts `request` with `"stream": true` and hands each event's decoded `data` to `onEvent`
    /// until `[DONE]`.
    func stream(_ path: String, _ request: [String: Any], onEvent: ([String: Any]) throws -> Void) async throws {
        var request = request
        request["stream"] = true
        let json = try JSONSerialization.data(withJSONObject: request)
        var pending: [UInt8] = []
        let status = try await send(.POST, path, json: Array(json)) { status, buffer in
            pending += buffer.readableBytesView
            guard (200 ..< 300).contains(status) else { return }
            // Events end with a blank line.
            while let end = Self.eventEnd(pending) {
                let event = String(decoding: pending[..<end.start], as: UTF8.self)
                pending.removeSubrange(..<end.next)
                for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                    let data = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                    if data == "[DONE]" { return }
                    guard let object = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { continue }
                    if let error = object["error"] as? [String: Any] {
                        throw Failure(description: error["message"] as? String ?? "the server reported an error")
                    }
                    try onEvent(object)
                }
            }
        }
        try Self.check(status, pending)
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

    private static func check(_ status: Int, _ body: [UInt8]) throws {
        guard !(200 ..< 300).contains(status) else { return }
        let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        let message = (object?["error"] as? [String: Any])?["message"] as? String ?? String(decoding: body.prefix(500), as: UTF8.self)
        throw Failure(description: "the server answered \(status): \(message)")
    }
}

/// `--server` and `--api-key`, for the commands that can talk to a running coordinator.
struct ClientOptions: ParsableArguments {
    @Option(help: "Use a running coordinator's HTTP API at this URL (e.g. http://127.0.0.1:8080) instead of loading the model here.")
    var server: String?

    @Option(help: "API key for --server (default: $STRATA_API_KEY).")
    var apiKey: String?

    func client() throws -> APIClient? {
        guard let server else { return nil }
        return try APIClient(server: server, apiKey: apiKey)
    }
}

extension SamplingOptions {
    /// The request fields these flags stand for.
    var requestFields: [String: Any] {
        var fields: [String: Any] = ["max_tokens": maxTokens, "temperature": temperature, "top_k": topK, "top_p": topP,
                                     "min_p": minP, "repetition_penalty": repeatPenalty]
        if let seed { fields["seed"] = Int64(bitPattern: seed) }
        if !stops.isEmpty { fields["stop"] = stops }
        return fields
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

    static func run(_ client: APIClient, chat messages: [[String: String]]?, prompt: String?, fields: [String: Any],
                    onText: (String) -> Void) async throws -> RemoteGeneration {
        var request = fields
        request["stream_options"] = ["include_usage": true]
        if let messages { request["messages"] = messages } else if let prompt { request["prompt"] = prompt }
        var out = RemoteGeneration()
        let start = ContinuousClock.now
        var first: ContinuousClock.Instant?
        try await client.stream(messages == nil ? "/v1/completions" : "/v1/chat/completions", request) { event in
            if let usage = event["usage"] as? [String: Any] {
                out.promptTokens = usage["prompt_tokens"] as? Int ?? 0
                out.completionTokens = usage["completion_tokens"] as? Int ?? 0
            }
            guard let choice = (event["choices"] as? [[String: Any]])?.first else { return }
            let piece = ((choice["delta"] as? [String: Any])?["content"] as? String) ?? (choice["text"] as? String) ?? ""
            if !piece.isEmpty {
                if first == nil { first = .now }
                out.text += piece
                onText(piece)
            }
            if let reason = choice["finish_reason"] as? String { out.finishReason = reason }
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
