import Foundation
import HTTPTypes
import Hummingbird
import StrataAPI
import StrataCoordinator

/// An error answered in OpenAI's shape:
/// `{"error": {"message": …, "type": …, "param": …, "code": …}}`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? Self.type(of: status)
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    private static func type(of status: HTTPResponse.Status) -> String {
        switch status.code {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 429: "rate_limit_error"
        case 400 ..< 500: "invalid_request_error"
        case 503: "overloaded_error"
        default: "server_error"
        }
    }

    var body: ErrorBody { ErrorBody(message: message, type: type, param: param, code: code) }

    func response(headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: encodeJSON(body))))
    }

    /// What the cluster's refusal means to a client.
    static func from(_ error: ClusterError) -> APIError {
        switch error {
        case .busy:
            APIError(.tooManyRequests, error.description, code: "queue_full")
        case .generation(.promptTooLong):
            APIError(.badRequest, error.description, param: "prompt", code: "context_length_exceeded")
        case .generation(.emptyPrompt):
            APIError(.badRequest, error.description, param: "prompt")
        case .kvCacheTooSmall:
            APIError(.badRequest, error.description, param: "max_tokens", code: "context_length_exceeded")
        case .shutDown, .workerLost, .noWorkersLeft, .doesNotFit, .partition:
            // (The last three, once serving: no plan fits the workers left.)
            APIError(.serviceUnavailable, error.description, code: "unavailable")
        default:
            APIError(.internalServerError, error.description)
        }
    }

    /// A `JSONDecoder` failure, named by the field it concerns.
    static func from(_ error: DecodingError) -> APIError {
        func path(_ keys: [any CodingKey]) -> String? {
            guard !keys.isEmpty else { return nil }
            return keys.map { k in k.intValue.map { "[\($0)]" } ?? k.stringValue }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case let .typeMismatch(type, context):
            guard let name = path(context.codingPath) else { return .invalid("the request body must be a JSON object") }
            // Our own decoders describe what they take ("a string or an array of strings").
            let wanted = context.debugDescription.hasPrefix("a ") ? context.debugDescription : describe(type)
            return .invalid("'\(name)' must be \(wanted)", param: name)
        case let .valueNotFound(type, context):
            let name = path(context.codingPath) ?? "the request body"
            return .invalid("'\(name)' must be \(describe(type)), not null", param: path(context.codingPath))
        case let .keyNotFound(key, context):
            let name = path(context.codingPath + [key]) ?? key.stringValue
            return .invalid("'\(name)' is required", param: name)
        case let .dataCorrupted(context):
            if context.codingPath.isEmpty { return .invalid("the request body is not valid JSON") }
            return .invalid("'\(path(context.codingPath)!)': \(context.debugDescription)", param: path(context.codingPath))
        @unknown default:
            return .invalid("the request body could not be read: \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int32.Type, is UInt64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is [Any].Type: "an array"
        default: "of type \(type)"
        }
    }
}
