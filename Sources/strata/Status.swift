import ArgumentParser
import Foundation
import StrataAPI
import StrataCoordinator

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running coordinator's stages: layers, workers, memory and KV cache use.")

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print the server's JSON as it is.")
    var json = false

    func validate() throws {
        guard client.server != nil else { throw ValidationError("give --server URL (e.g. http://127.0.0.1:8080)") }
    }

    func run() async throws {
        let api = try client.client()!
        let s = try await api.get("/status", as: ClusterStatus.self)
        if json { return print(try jsonString(s)) }
        print("model      \(s.model) (\(s.layers) layers, sha256 \(s.model_sha256.prefix(16))…)")
        print("sequences  \(s.running) running, \(s.waiting) waiting (at most \(s.max_sequences) running, \(s.max_waiting) waiting; context \(s.context_length) tokens)")
        let rows = [["stage", "layers", "worker", "address", "memory", "weights", "KV cache", "resident"]] + s.stages.map { st in
            [String(st.index), "\(st.layer_start)-\(st.layer_end - 1)", st.worker, st.endpoint, formatBytes(st.memory_bytes),
             formatBytes(st.weight_bytes) + (st.streamed_weights ? " (streamed)" : ""),
             "\(formatBytes(st.kv_cache_bytes)), \(st.kv_sequences) seq", formatBytes(st.resident_bytes)]
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces))
        }
    }
}
