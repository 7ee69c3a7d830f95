import Foundation

/// `strata local --http 127.0.0.1:0`: workers, a coordinator and its HTTP API, waited for until
/// every stage is loaded. Killed (with its workers) when dropped or when the test process ends.
public final class ServerProcess: @unchecked Sendable {
    public let child: ChildProcess
    /// e.g. http://127.0.0.1:41234
    public let url: String

    public init(workers: Int = 2, model: String = TestPaths.defaultModel, _ arguments: [String] = []) throws {
        let child = try ChildProcess.strata(["local", "--workers", String(workers), "--model", model, "--threads", "1",
                                             "--http", "127.0.0.1:0", "--exit-with-parent"] + arguments)
        self.child = child
        var url: String?
        ChildProcess.poll(timeout: .seconds(120)) {
            let err = child.stderr
            if url == nil, let r = err.range(of: "serving the API at ") {
                url = err[r.upperBound...].split(separator: " ").first.map(String.init)
            }
            return (url != nil && err.contains("ready")) || !child.isRunning
        }
        guard let url, child.isRunning else {
            child.kill()
            throw ServerStartError(stderr: child.stderr)
        }
        self.url = url
    }
}

public struct ServerStartError: Error, CustomStringConvertible {
    public let stderr: String
    public var description: String { "the server did not start: \(stderr)" }
}

/// One HTTP exchange through `curl`, a client nobody here wrote.
public struct CurlResult: Sendable {
    public let status: Int
    public let body: String

    /// The body as a JSON object, if it is one.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    /// `error.message`, `error.type` and `error.param` of an OpenAI error body.
    public var error: (message: String, type: String, param: String?)? {
        guard let e = json?["error"] as? [String: Any], let m = e["message"] as? String, let t = e["type"] as? String else { return nil }
        return (m, t, e["param"] as? String)
    }

    /// Runs `curl` with `arguments`, the status code appended to the body on a last line.
    public static func run(_ arguments: [String], timeout: Duration = .seconds(120)) throws -> CurlResult {
        let curl = try ChildProcess(URL(fileURLWithPath: "/usr/bin/curl"), ["-sS", "-w", "\n%{http_code}"] + arguments)
        _ = curl.wait(timeout: timeout)
        var out = curl.stdout
        guard let nl = out.lastIndex(of: "\n"), let status = Int(out[out.index(after: nl)...]) else {
            throw CurlError(message: "curl \(arguments.joined(separator: " ")): \(curl.stderr)")
        }
        out = String(out[..<nl])
        return CurlResult(status: status, body: out)
    }

    public static func post(_ url: String, _ body: String, headers: [String] = []) throws -> CurlResult {
        try run(["-X", "POST", url, "-H", "Content-Type: application/json", "--data-binary", body] + headers.flatMap { ["-H", $0] })
    }

    public static func get(_ url: String, headers: [String] = []) throws -> CurlResult {
        try run([url] + headers.flatMap { ["-H", $0] })
    }
}

public struct CurlError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
