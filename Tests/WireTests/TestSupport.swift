import StrataWire
import TestSupport

extension SplitMix64 {
    /// Uniform enough in 0 ..< n for tests.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0 ..< n).map { _ in byte() } }
}

/// The error `decode` throws for `frame`, or nil when it decodes.
func decodeError(_ frame: [UInt8]) -> WireError? {
    do {
        _ = try WireMessage.decode(frame)
        return nil
    } catch {
        return error
    }
}

/// A little-endian u32 written over `frame[at ..< at + 4]`.
func put32(_ v: UInt32, in frame: inout [UInt8], at: Int) {
    for i in 0 ..< 4 { frame[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
}

/// `frame` with its header's body length set to what the frame now holds.
func fixLength(_ frame: [UInt8]) -> [UInt8] {
    var f = frame
    put32(UInt32(f.count - Wire.headerBytes), in: &f, at: 8)
    return f
}

/// A frame of `kind` around `body`, as the spec says, without the encoder.
func frame(kind: UInt8, version: UInt16 = Wire.protocolVersion, flags: UInt8 = 0, body: [UInt8]) -> [UInt8] {
    var f = Array("STRA".utf8) + [UInt8(version & 0xFF), UInt8(version >> 8), kind, flags]
    f += le32(UInt32(body.count))
    return f + body
}

func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
func le32(_ v: UInt32) -> [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
func le64(_ v: UInt64) -> [UInt8] { (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
func str(_ s: String) -> [UInt8] { le16(UInt16(s.utf8.count)) + Array(s.utf8) }

/// Messages of every kind, small but with every field set to something telling.
enum Samples {
    static let model = ModelIdentity(sha256: (0 ..< 32).map { UInt8($0) }, byteCount: 123_456_789, name: "SmolLM2-135M-Instruct.Q4_1.gguf")

    static let hello = Hello(role: .worker, peerID: "worker-α:7000", appVersion: "0.2.0", memoryBytes: 8 << 30,
                             threads: 16, cpuFeatures: ["avx2", "fma", "f16c"],
                             models: [model, ModelIdentity(sha256: [UInt8](repeating: 0xEE, count: 32), byteCount: 0, name: "")],
                             curvePublicKey: [UInt8](repeating: 0x5A, count: 32))

    static let assign = Assign(model: model, layerStart: 10, layerEnd: 20, layerCount: 30, stageIndex: 1, stageCount: 3,
                               contextLength: 4096, maxSequences: 8, batchRows: 1000, activationType: .q8_0,
                               nextEndpoint: "tcp://10.0.0.2:7000", nextCurvePublicKey: [UInt8](repeating: 7, count: 32),
                               tensorDigests: [TensorDigest(name: "blk.10.attn_q.weight", sha256: [UInt8](repeating: 0xC3, count: 32)),
                                               TensorDigest(name: "rope_freqs.weight", sha256: (0 ..< 32).map { UInt8(255 - $0) })],
                               stageFileBytes: 1 << 33, plan: 9,
                               keep: KeptCaches(fromPlan: 8, sequences: [.init(sequence: 1, length: 4096), .init(sequence: .max, length: 0)],
                                                rebuildStart: 15, rebuildEnd: 20, rebuildFromLog: true, sendOn: true))

    static let forward: Activations = {
        let values = (0 ..< 3 * 32).map { Float($0) * 0.25 - 7 }
        return Activations(requestID: 99, lastRowsOnly: false, type: .q8_0, dim: 32,
                           entries: [.init(sequence: 1, position: 0, tokenCount: 2), .init(sequence: 2, position: 17, tokenCount: 1)],
                           stageNanos: [1_000_000, 2_500_000], payload: ActivationCodec.encode(values, as: .q8_0))
    }()

    static let result: Activations = {
        let values = (0 ..< 2 * 4).map { Float($0) - 3.5 }
        return Activations(requestID: 99, lastRowsOnly: true, type: .bf16, dim: 4,
                           entries: [.init(sequence: 1, position: 0, tokenCount: 5), .init(sequence: 2, position: 17, tokenCount: 3)],
                           stageNanos: [1, 2, 3], payload: ActivationCodec.encode(values, as: .bf16))
    }()

    static let all: [WireMessage] = [
        .hello(hello),
        .hello(Hello(role: .coordinator, peerID: "", appVersion: "")),
        .assign(assign),
        .assign(Assign(model: model, layerStart: 0, layerEnd: 1, layerCount: 1, stageIndex: 0, stageCount: 1,
                       contextLength: 0, maxSequences: 0, activationType: .f32, nextEndpoint: "")),
        .loadReport(LoadReport(status: .ready, weightBytes: 1 << 40, kvCacheBytes: 3, residentBytes: .max, loadMilliseconds: 1234,
                               receivedBytes: 5 << 30, kvPages: 70_000, kvPageRows: 16)),
        .weightChunk(WeightChunk(offset: 1 << 20, totalBytes: 3 << 20, data: (0 ..< 300).map { UInt8(truncatingIfNeeded: $0 * 7) })),
        .weightChunk(WeightChunk(offset: 5, totalBytes: 5, data: [])),
        .forward(forward),
        .forward(Activations(requestID: 0, lastRowsOnly: false, type: .f32, dim: 1, entries: [], payload: [])),
        .forward(Activations(requestID: 3 << 32, lastRowsOnly: false, rebuild: true, type: .f32, dim: 1,
                             entries: [.init(sequence: 4, position: 0, tokenCount: 2)], payload: ActivationCodec.encode([1, 2], as: .f32))),
        .result(result),
        .release(Release([1, 2, .max])),
        .release(Release([7], plan: 3, passOn: true)),
        .release(Release([])),
        .heartbeat(Heartbeat(nonce: 0xDEAD_BEEF, sequences: 3, kvCacheBytes: 1 << 30, residentBytes: 2 << 30)),
        .shutdown,
        .error(WireErrorMessage(code: .modelMismatch, requestID: 77, message: "stage file hash differs — expected c3c3…")),
    ]
}
