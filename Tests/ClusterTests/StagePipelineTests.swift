import Foundation
import StrataModel
import StrataWire
import TestSupport
import Testing
import ZeroMQ

/// The protocol driven by hand: hello, assign, forward through two worker processes, and the
/// activations that come back compared bit for bit with one process running the same layers.
struct StagePipelineTests {
    @Test func f32ActivationsThroughTwoStagesAreBitIdentical() throws {
        let tiny = TinyModel(dim: 64, hiddenDim: 128, nLayers: 4, nHeads: 4, nKVHeads: 2, vocab: 64, contextLength: 64, seed: 31)
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let context = try ZMQContext()
        let links = try workers.map { w in
            let s = try ZMQSocket(context, type: .dealer)
            try s.connect(w.endpoint)
            return s
        }
        defer { for s in links { _ = try? s.send(WireMessage.shutdown.encoded()); s.close() } }

        func next(_ s: ZMQSocket) throws -> WireMessage {
            let ready = try ZMQ.poll([(s, .readable)], timeoutMilliseconds: 10_000)
            guard ready[0].contains(.readable), let frame = try s.receive(dontWait: true)?.last else {
                throw NoAnswer()
            }
            return try WireMessage.decode(frame)
        }

        // Handshake and assignment: layers 0..<1 and 1..<4, stage 0 passing to stage 1.
        let identity = ModelIdentity(sha256: try sha256(path), byteCount: 0, name: "tiny")
        for (i, s) in links.enumerated() {
            try s.send(WireMessage.hello(Hello(role: .coordinator, peerID: "test", appVersion: "test")).encoded())
            guard case let .hello(h) = try next(s) else { Issue.record("expected hello"); return }
            #expect(h.role == .worker)
            let layers: Range<UInt32> = i == 0 ? 0 ..< 1 : 1 ..< 4
            let file = try GGUFFile(path: path)
            let names = try StageFile.tensorNames(in: file, layers: Int(layers.lowerBound) ..< Int(layers.upperBound))
            let digests = try ModelDigests.ofTensors(names, in: file, cache: nil)
                .map { TensorDigest(name: $0.key, sha256: ModelDigests.bytes(hex: $0.value)!) }
            try s.send(WireMessage.assign(Assign(model: identity, layerStart: layers.lowerBound, layerEnd: layers.upperBound,
                                                 layerCount: 4, stageIndex: UInt16(i), stageCount: 2, contextLength: 64,
                                                 maxSequences: 4, activationType: .f32,
                                                 nextEndpoint: i == 0 ? workers[1].endpoint : "", tensorDigests: digests)).encoded())
            guard case let .loadReport(r) = try next(s) else { Issue.record("expected a load report"); return }
            #expect(r.status == .ready)
        }

        // The same tokens through one in-process engine holding all four layers.
        let engine = try TinyModel.engine(path: path, threads: 1)
        let cache = engine.makeCache(maxSequences: 4)
        let prompt: [Int32] = [3, 1, 4, 1, 5, 9]
        for step in 0 ..< 3 {
            let tokens = step == 0 ? prompt : [Int32(step * 7)]
            let start = step == 0 ? 0 : prompt.count + step - 1
            let batch = tokens.indices.map { BatchToken(sequence: 42, position: start + $0) }
            var expected = try engine.embed(tokens)
            let input = expected
            try engine.forward(&expected, batch: batch, cache: cache)

            try links[0].send(WireMessage.forward(Activations(
                requestID: UInt64(step + 1), lastRowsOnly: false, type: .f32, dim: 64,
                entries: [.init(sequence: 42, position: UInt32(start), tokenCount: UInt32(tokens.count))],
                payload: ActivationCodec.encode(input, as: .f32))).encoded())
            guard case let .result(out) = try next(links[1]) else { Issue.record("expected a result"); return }
            #expect(out.requestID == UInt64(step + 1))
            #expect(out.stageNanos.count == 2)
            let got = try ActivationCodec.decode(out.payload, as: .f32, count: tokens.count * 64)
            #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "step \(step)")
        }
    }

    struct NoAnswer: Error {}

    private func sha256(_ path: String) throws -> [UInt8] {
        let p = try ChildProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [path])
        #expect(p.wait(timeout: .seconds(10)) == 0)
        let hex = Array(p.stdout.prefix(64))
        return stride(from: 0, to: 64, by: 2).map { UInt8(String(hex[$0 ... $0 + 1]), radix: 16)! }
    }
}
