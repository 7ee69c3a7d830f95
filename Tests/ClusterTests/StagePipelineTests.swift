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
        let links = try workers.map { try coordinatorLink(context, to: $0) }
        defer { for s in links { _ = try? s.send(WireMessage.shutdown.encoded()); s.close() } }

        func next(_ s: ZMQSocket) throws -> WireMessage { try nextMessage(s, from: workers, seconds: 10) }

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
                                                 nextEndpoint: i == 0 ? workers[1].endpoint : "",
                                                 nextCurvePublicKey: i == 0 ? workers[1].keys!.publicKey : [],
                                                 previousCurvePublicKey: i == 1 ? workers[0].keys!.publicKey : [],
                                                 tensorDigests: digests)).encoded())
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

    /// The worker answers heartbeats while it computes: a long batch (a 512-token prompt through
    /// every layer) is followed at once by heartbeats, and their answers come back before the
    /// batch's result, not behind it.
    @Test func heartbeatsAreAnsweredDuringALongBatch() throws {
        let tiny = TinyModel(dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 4, nKVHeads: 2, vocab: 64, contextLength: 1024, seed: 8)
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let worker = try WorkerProcess(["--model", path])
        defer { worker.kill() }
        let context = try ZMQContext()
        let link = try coordinatorLink(context, to: worker)
        defer { _ = try? link.send(WireMessage.shutdown.encoded()); link.close() }
        func next() throws -> WireMessage { try nextMessage(link, from: [worker], seconds: 30) }
        try link.send(WireMessage.hello(Hello(role: .coordinator, peerID: "test", appVersion: "test")).encoded())
        guard case .hello = try next() else { Issue.record("expected hello"); return }
        let file = try GGUFFile(path: path)
        let names = try StageFile.tensorNames(in: file, layers: 0 ..< 4)
        let digests = try ModelDigests.ofTensors(names, in: file, cache: nil)
            .map { TensorDigest(name: $0.key, sha256: ModelDigests.bytes(hex: $0.value)!) }
        try link.send(WireMessage.assign(Assign(model: ModelIdentity(sha256: try sha256(path), byteCount: 0, name: "tiny"),
                                                layerStart: 0, layerEnd: 4, layerCount: 4, stageIndex: 0, stageCount: 1,
                                                contextLength: 1024, maxSequences: 1, activationType: .f32, nextEndpoint: "",
                                                tensorDigests: digests, plan: 5)).encoded())
        guard case let .loadReport(r) = try next() else { Issue.record("expected a load report"); return }
        #expect(r.status == .ready && r.plan == 5)

        let tokens = 512
        let input = [Float]((0 ..< tokens * 256).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        try link.send(WireMessage.forward(Activations(
            requestID: 5 << 32 | 1, lastRowsOnly: true, type: .f32, dim: 256,
            entries: [.init(sequence: 1, position: 0, tokenCount: UInt32(tokens))],
            payload: ActivationCodec.encode(input, as: .f32))).encoded())
        for nonce in 1 ... 3 { try link.send(WireMessage.heartbeat(Heartbeat(nonce: UInt64(nonce))).encoded()) }
        var order: [String] = []
        while order.count < 4 {
            switch try next() {
            case let .heartbeat(h): order.append("heartbeat \(h.nonce)")
            case let .result(a): order.append("result \(a.requestID & 0xFFFF_FFFF)")
            case let other: Issue.record("unexpected \(other.kind)"); return
            }
        }
        #expect(order == ["heartbeat 1", "heartbeat 2", "heartbeat 3", "result 1"])
    }

    /// A frame cannot make a worker allocate more than its plan sends: a forward of more rows
    /// than the assignment's `batchRows` is refused before its payload is decoded, and a frame
    /// over the wire's limit is dropped by ZeroMQ before it is buffered (the worker's peak
    /// memory does not grow by it), while the worker goes on serving.
    @Test func framesBeyondWhatThePlanSendsAreRefused() throws {
        let tiny = TinyModel(dim: 256, hiddenDim: 768, nLayers: 2, nHeads: 4, nKVHeads: 2, vocab: 64, contextLength: 64, seed: 8)
        let path = try tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let worker = try WorkerProcess(["--model", path])
        defer { worker.kill() }
        let context = try ZMQContext()
        func connect() throws -> (ZMQSocket, () throws -> WireMessage) {
            let link = try coordinatorLink(context, to: worker)
            try link.setLinger(milliseconds: 0)
            try link.send(WireMessage.hello(Hello(role: .coordinator, peerID: "test", appVersion: "test")).encoded())
            return (link, { try nextMessage(link, from: [worker]) })
        }
        let (link, next) = try connect()
        guard case .hello = try next() else { Issue.record("expected hello"); return }
        let file = try GGUFFile(path: path)
        let digests = try ModelDigests.ofTensors(try StageFile.tensorNames(in: file, layers: 0 ..< 2), in: file, cache: nil)
            .map { TensorDigest(name: $0.key, sha256: ModelDigests.bytes(hex: $0.value)!) }
        try link.send(WireMessage.assign(Assign(model: ModelIdentity(sha256: try sha256(path), byteCount: 0, name: "tiny"),
                                                layerStart: 0, layerEnd: 2, layerCount: 2, stageIndex: 0, stageCount: 1,
                                                contextLength: 64, maxSequences: 2, batchRows: 8, activationType: .f32, nextEndpoint: "",
                                                tensorDigests: digests, plan: 1)).encoded())
        guard case let .loadReport(r) = try next() else { Issue.record("expected a load report"); return }
        #expect(r.status == .ready)
        func forward(_ id: UInt64, rows: Int) throws {
            try link.send(WireMessage.forward(Activations(
                requestID: 1 << 32 | id, lastRowsOnly: true, type: .f32, dim: 256,
                entries: [.init(sequence: id, position: 0, tokenCount: UInt32(rows))],
                payload: ActivationCodec.encode([Float](repeating: 0.25, count: rows * 256), as: .f32))).encoded())
        }
        try forward(1, rows: 9)
        guard case let .error(e) = try next() else { Issue.record("expected an error"); return }
        #expect(e.code == .malformed && e.requestID == 1 << 32 | 1, "\(e)")
        #expect(e.message.contains("9 rows") && e.message.contains("at most 8"), "\(e.message)")
        try forward(2, rows: 8)
        guard case let .result(a) = try next() else { Issue.record("expected a result"); return }
        #expect(a.requestID == 1 << 32 | 2)

        // 48 MiB in one frame, three times the limit: the connection is dropped, nothing buffered.
        func peakBytes() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(worker.child.process.processIdentifier)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
            return try #require(Int(line.split(separator: " ")[1])) << 10
        }
        let before = try peakBytes()
        var huge = WireMessage.heartbeat(Heartbeat(nonce: 1)).encoded()
        huge += [UInt8](repeating: 0x5A, count: 48 << 20)
        try link.send(huge)
        Thread.sleep(forTimeInterval: 2)
        let grew = try peakBytes() - before
        #expect(grew < 8 << 20, "the worker's peak memory grew by \(grew >> 20) MiB")
        #expect(worker.child.isRunning)
        link.close()
        let (again, answer) = try connect()
        defer { _ = try? again.send(WireMessage.shutdown.encoded()); again.close() }
        guard case .hello = try answer() else { Issue.record("expected hello"); return }
    }

    /// A streamed stage file is written on a thread of its own. On a disk that writes 1 MiB/s,
    /// heartbeats sent behind 16 MiB of chunks (16 s of writing) are answered at once; a
    /// coordinator that runs more than 64 MiB ahead of the disk is refused, and the partial
    /// file is removed.
    @Test func heartbeatsAreAnsweredWhileAStageFileIsWrittenSlowly() throws {
        let disk = try ThrottledDisk(name: "strata-test-\(UUID().uuidString.prefix(8))", megabytes: 128, writeBytesPerSecond: 1 << 20)
        defer { disk.remove() }
        let cache = disk.mountPoint + "/cache"
        let worker = try WorkerProcess(cgroup: disk, ["--cache-dir", cache])
        defer { worker.kill() }
        let context = try ZMQContext()
        let link = try coordinatorLink(context, to: worker)
        try link.setLinger(milliseconds: 0)
        defer { _ = try? link.send(WireMessage.shutdown.encoded()); link.close() }
        func next() throws -> WireMessage { try nextMessage(link, from: [worker]) }
        try link.send(WireMessage.hello(Hello(role: .coordinator, peerID: "test", appVersion: "test")).encoded())
        guard case .hello = try next() else { Issue.record("expected hello"); return }
        let fileBytes: UInt64 = 100 << 20
        try link.send(WireMessage.assign(Assign(model: ModelIdentity(sha256: [UInt8](repeating: 7, count: 32), byteCount: 0, name: "slow"),
                                                layerStart: 0, layerEnd: 1, layerCount: 1, stageIndex: 0, stageCount: 1,
                                                contextLength: 64, maxSequences: 1, activationType: .f32, nextEndpoint: "",
                                                tensorDigests: [], stageFileBytes: fileBytes, plan: 1)).encoded())
        guard case let .loadReport(r) = try next() else { Issue.record("expected a load report"); return }
        #expect(r.status == .loading && r.receivedBytes == 0)

        var sent: UInt64 = 0
        func chunks(_ count: Int) throws {
            for _ in 0 ..< count {
                let data = [UInt8](repeating: UInt8(truncatingIfNeeded: sent >> 22), count: 4 << 20)
                try link.send(WireMessage.weightChunk(WeightChunk(offset: sent, totalBytes: fileBytes, data: data)).encoded())
                sent += UInt64(data.count)
            }
        }
        try chunks(4)
        let heartbeatsSent = ContinuousClock.now
        for nonce in 1 ... 3 { try link.send(WireMessage.heartbeat(Heartbeat(nonce: UInt64(nonce))).encoded()) }
        var answered: [UInt64] = [], written: UInt64 = 0
        while answered.count < 3 {
            switch try next() {
            case let .heartbeat(h): answered.append(h.nonce)
            case let .loadReport(r): written = r.receivedBytes
            case let other: Issue.record("unexpected \(other.kind)"); return
            }
        }
        let waited = ContinuousClock.now - heartbeatsSent
        #expect(answered == [1, 2, 3])
        #expect(waited < .seconds(2), "the heartbeats were answered after \(waited)")
        #expect(written < 8 << 20, "\(written) bytes were acknowledged before the heartbeats")

        // 80 MiB sent at once: more than 64 MiB ahead of the disk.
        try chunks(16)
        var refusal: WireErrorMessage?
        while refusal == nil {
            switch try next() {
            case let .error(e): refusal = e
            case .loadReport: continue
            case let other: Issue.record("unexpected \(other.kind)"); return
            }
        }
        #expect(refusal?.code == .malformed && refusal?.message.contains("ahead of what this worker has written") == true, "\(String(describing: refusal))")
        try link.send(WireMessage.heartbeat(Heartbeat(nonce: 4)).encoded())
        while true {
            if case let .heartbeat(h) = try next() { #expect(h.nonce == 4); break }
        }
        let removed = ChildProcess.poll(timeout: .seconds(15)) {
            ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).allSatisfy { !$0.hasSuffix(".part") }
        }
        #expect(removed, "the partial stage file is still in \(cache)")
    }

    /// The next message on a link to `workers`, waiting at most `seconds`.
    private func nextMessage(_ link: ZMQSocket, from workers: [WorkerProcess], seconds: Int = 20) throws -> WireMessage {
        let ready = try ZMQ.poll([(link, .readable)], timeoutMilliseconds: seconds * 1000)
        guard ready[0].contains(.readable), let frame = try link.receive(dontWait: true)?.last else {
            throw NoAnswer(logs: workers.map(\.child.stderr).joined(separator: "\n"))
        }
        return try WireMessage.decode(frame)
    }

    struct NoAnswer: Error, CustomStringConvertible {
        let logs: String
        var description: String { "no answer within the time allowed; the workers logged:\n\(logs)" }
    }

    private func sha256(_ path: String) throws -> [UInt8] {
        let p = try ChildProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [path])
        #expect(p.wait(timeout: .seconds(10)) == 0)
        let hex = Array(p.stdout.prefix(64))
        return stride(from: 0, to: 64, by: 2).map { UInt8(String(hex[$0 ... $0 + 1]), radix: 16)! }
    }
}
