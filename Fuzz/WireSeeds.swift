// Writes the wire fuzzer's seed corpus (Fuzz/corpus/wire): one frame of every message kind,
// with every field set, as the encoder writes them. `scripts/fuzz.sh --seeds` builds and runs
// it with Sources/Wire; the corpus is committed.
import Foundation

let model = ModelIdentity(sha256: (0 ..< 32).map { UInt8($0) }, byteCount: 123_456_789, name: "SmolLM2-135M-Instruct.Q4_1.gguf")
let key = [UInt8](repeating: 0x5A, count: 32)
func activations(_ type: ActivationType, dim: Int, rows: Int, rebuild: Bool = false, last: Bool = false) -> Activations {
    let values = (0 ..< rows * dim).map { Float($0) * 0.25 - 7 }
    return Activations(requestID: 3 << 32 | 99, lastRowsOnly: last, rebuild: rebuild, type: type, dim: UInt32(dim),
                       entries: [.init(sequence: 1, position: 0, tokenCount: UInt32(rows - 1)), .init(sequence: 2, position: 17, tokenCount: 1)],
                       stageNanos: [1_000_000, 2_500_000], payload: ActivationCodec.encode(values, as: type))
}
let seeds: [(String, WireMessage)] = [
    ("hello-worker", .hello(Hello(role: .worker, peerID: "worker-1", appVersion: "0.4.0", memoryBytes: 8 << 30, threads: 16,
                                  cpuFeatures: ["avx2", "fma"], models: [model], curvePublicKey: key, endpoint: "tcp://10.0.0.2:7000"))),
    ("hello-coordinator", .hello(Hello(role: .coordinator, peerID: "c", appVersion: "0.4.0"))),
    ("assign", .assign(Assign(model: model, layerStart: 10, layerEnd: 20, layerCount: 30, stageIndex: 1, stageCount: 3,
                              contextLength: 4096, maxSequences: 8, activationType: .q8_0, nextEndpoint: "tcp://10.0.0.3:7000",
                              nextCurvePublicKey: key, previousCurvePublicKey: key,
                              tensorDigests: [TensorDigest(name: "blk.10.attn_q.weight", sha256: [UInt8](repeating: 0xC3, count: 32))],
                              stageFileBytes: 1 << 33, plan: 9,
                              keep: KeptCaches(fromPlan: 8, sequences: [.init(sequence: 1, length: 4096)], rebuildStart: 15, rebuildEnd: 20,
                                               rebuildFromLog: true, sendOn: true)))),
    ("load-report", .loadReport(LoadReport(status: .ready, weightBytes: 1 << 40, kvCacheBytes: 3, residentBytes: 7, loadMilliseconds: 1234,
                                           receivedBytes: 5 << 30, kvPages: 70_000, kvPageRows: 16, plan: 9))),
    ("weight-chunk", .weightChunk(WeightChunk(offset: 1 << 20, totalBytes: 3 << 20, data: (0 ..< 300).map { UInt8(truncatingIfNeeded: $0 * 7) }))),
    ("forward-f32", .forward(activations(.f32, dim: 8, rows: 3))),
    ("forward-f16", .forward(activations(.f16, dim: 8, rows: 3))),
    ("forward-q8_0", .forward(activations(.q8_0, dim: 32, rows: 2, rebuild: true))),
    ("result-bf16", .result(activations(.bf16, dim: 4, rows: 3, last: true))),
    ("release", .release(Release([1, 2, .max], plan: 2, passOn: true))),
    ("heartbeat", .heartbeat(Heartbeat(nonce: 0xDEAD_BEEF, sequences: 3, kvCacheBytes: 1 << 30, residentBytes: 2 << 30))),
    ("shutdown", .shutdown),
    ("error", .error(WireErrorMessage(code: .unauthorized, requestID: 77, message: "this key is trusted as stage only"))),
]
@main enum WireSeeds {
    static func main() throws {
        let directory = CommandLine.arguments[1]
        for (name, message) in seeds {
            try Data(message.encoded()).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
        }
        print("wrote \(seeds.count) seeds to \(directory)")
    }
}
