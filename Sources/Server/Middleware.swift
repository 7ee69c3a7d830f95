import Foundation
import HTTPTypes
import Hummingbird
import StrataAPI

// What every request passes through: error answers in OpenAI's shape, the API key, the request counter.

/// Answers every error leaving the routes (ours, Hummingbird's 404s and body limits, anything
/// unexpected) as an OpenAI error object.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response()
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return APIError(error.status, message).response(headers: error.headers)
        } catch let error as any HTTPResponseError {
            return APIError(error.status, error.status.reasonPhrase).response()
        } catch {
            return APIError(.internalServerError, "\(error)").response()
        }
    }
}

/// Requires `Authorization: Bearer KEY` on every route but the health check and the metrics.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String
    static var openPaths: Set<String> { ["/health", "/metrics"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !Self.openPaths.contains(request.uri.path) else { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw APIError(.unauthorized, "this server needs an API key: send 'Authorization: Bearer KEY'", code: "missing_api_key")
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), Array(key.utf8)) else {
            throw APIError(.unauthorized, "the API key is not valid", code: "invalid_api_key")
        }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference, so timing tells nothing of the key.
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0 ..< max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// Counts every answer by endpoint and status (unknown paths count as "other").
struct RequestCounter<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    static var known: Set<String> {
        ["/health", "/metrics", "/status", "/v1/models", "/v1/completions", "/v1/chat/completions"]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let endpoint = Self.known.contains(path) ? path : path.hasPrefix("/v1/models/") ? "/v1/models/{id}" : "other"
        do {
            let response = try await next(request, context)
            metrics.request(endpoint, status: response.status.code)
            return response
        } catch {
            metrics.request(endpoint, status: 500)
            throw error
        }
    }
}
