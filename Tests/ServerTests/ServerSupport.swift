import Foundation
import Testing
import TestSupport

/// One server on the default model for the tests that only need it answering; started by the
/// first test that asks, ended with the test process (`--exit-with-parent`).
let sharedServer: Result<ServerProcess, any Error> = Result { try ServerProcess(workers: 2) }

func server() throws -> ServerProcess { try sharedServer.get() }

/// The `openai` package's script (openai_client.py) in `mode`; its JSON report.
func runOpenAIClient(_ mode: String, _ arguments: [String]) throws -> (status: Int32?, report: [String: Any], output: String) {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("openai_client.py").path
    let python = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script, mode] + arguments)
    let status = python.wait(timeout: .seconds(240))
    let line = python.stdout.split(separator: "\n").last.map(String.init) ?? ""
    let report = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
    return (status, report, python.stdout + python.stderr)
}

/// The value of every sample of `name` in a Prometheus text exposition.
func samples(_ name: String, in text: String) -> [(labels: String, value: Double)] {
    text.split(separator: "\n").compactMap { line in
        guard !line.hasPrefix("#"), line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { return nil }
        let parts = line.split(separator: " ")
        guard parts.count == 2, let value = Double(parts[1]) else { return nil }
        let head = parts[0]
        let labels = head.firstIndex(of: "{").map { String(head[$0...]) } ?? ""
        return (labels, value)
    }
}

/// The metric families the Prometheus project's own parser (PyPI `prometheus-client`) reads
/// from an exposition: name → type. It throws on text that is not valid exposition format.
/// (It names a counter's family without the `_total` of its samples.)
func prometheusFamilies(_ text: String) throws -> [String: String] {
    let script = """
        import sys, json
        from prometheus_client.parser import text_string_to_metric_families
        print(json.dumps({f.name: f.type for f in text_string_to_metric_families(sys.stdin.read())}))
        """
    let parser = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script], input: text)
    guard parser.wait(timeout: .seconds(30)) == 0 else { throw ParseFailure(message: parser.stderr) }
    return try JSONDecoder().decode([String: String].self, from: Data(parser.stdout.utf8))
}

struct ParseFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { "prometheus_client could not parse the exposition: \(message)" }
}
