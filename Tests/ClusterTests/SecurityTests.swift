import Foundation
import Glibc
import StrataCoordinator
import StrataModel
import StrataWire
import TestSupport
import Testing
import ZeroMQ

/// Encrypted links over real sockets: peers the cluster was not told of get nothing, and the
/// cluster goes on as if they had not been there.
@Suite(.serialized) struct SecurityTests {
    static let model = TestPaths.defaultModel
    static let prompt: [Int32] = [1, 4093, 2683, 314, 260, 3575, 30, 2]

    /// What an intruder's socket heard within `milliseconds` after sending a hello as the
    /// coordinator, an assignment and a shutdown: nil when nothing came back.
    static func intrude(_ worker: WorkerProcess, as keys: CurveKeyPair?, serverKey: [UInt8]? = nil,
                        milliseconds: Int = 1500) throws -> [UInt8]? {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer)
        try socket.setLinger(milliseconds: 0)
        if let keys {
            try socket.setCurveClient(serverPublicKey: serverKey ?? worker.keys!.publicKey, publicKey: keys.publicKey, secretKey: keys.secretKey)
        }
        try socket.connect(worker.endpoint)
        try socket.send(WireMessage.hello(Hello(role: .coordinator, peerID: "intruder", appVersion: "0")).encoded())
        try socket.send(WireMessage.release(Release([1, 2, 3])).encoded())
        try socket.send(WireMessage.shutdown.encoded())
        let ready = try ZMQ.poll([(socket, .readable)], timeoutMilliseconds: milliseconds)
        return ready[0].contains(.readable) ? try socket.receive(dontWait: true)?.last : nil
    }

    /// A peer without keys, one with a key nobody trusts, and one with a worker's key pair from
    /// another cluster: none completes a handshake, so nothing they send arrives (the worker
    /// does not shut down) and nothing is answered; each is logged by the worker; the cluster
    /// serves on and answers as before.
    @Test func strangersGetNothingAndChangeNothing() async throws {
        let workers = try startWorkers(2, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: Self.model, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown() }
        let before = try await cluster.generate(promptIDs: Self.prompt, options: GenerationOptions(maxTokens: 12))

        // Another cluster's worker: its own coordinator key, its own key pair.
        let elsewhere = try TestKeys.makeWorkerKeys()
        let other = try WorkerProcess(keys: elsewhere, ["--model", Self.model, "--coordinator-key=" + (try CurveKeyPair.generate().publicText)])
        defer { other.kill() }

        for worker in workers {
            #expect(try Self.intrude(worker, as: nil) == nil, "a peer without keys was answered")
            #expect(try Self.intrude(worker, as: try CurveKeyPair.generate()) == nil, "an unknown key was answered")
            #expect(try Self.intrude(worker, as: elsewhere.keys) == nil, "another cluster's worker key was answered")
        }
        for worker in workers {
            #expect(worker.child.isRunning)
            #expect(await ChildProcess.poll(timeout: .seconds(5)) { worker.child.stderr.components(separatedBy: "is not trusted here").count - 1 >= 2 },
                    "\(worker.child.stderr)")
        }
        let after = try await cluster.generate(promptIDs: Self.prompt, options: GenerationOptions(maxTokens: 12))
        #expect(after.generatedIDs == before.generatedIDs)
        #expect(cluster.recoveries == 0)
        #expect(cluster.stages.map(\.endpoint) == workers.map(\.endpoint))
    }

    /// A key trusted as a stage is a stage only: the first stage's key pair, which the second
    /// stage lets in to send it activations, cannot say hello there as a coordinator, release
    /// sequences or stop it.
    @Test func aStageKeyCannotActAsTheCoordinator() async throws {
        let workers = try startWorkers(2, model: Self.model)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: Self.model, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown() }
        let before = try await cluster.generate(promptIDs: Self.prompt, options: GenerationOptions(maxTokens: 12))

        let stageKeys = try #require(workers[0].keys)
        let answer = try #require(try Self.intrude(workers[1], as: stageKeys), "the stage's key was not let in at all")
        guard case let .error(e) = try WireMessage.decode(answer) else { Issue.record("expected an error"); return }
        #expect(e.code == .unauthorized, "\(e)")
        #expect(e.message.contains("stage"), "\(e.message)")
        #expect(workers[1].child.isRunning)
        let after = try await cluster.generate(promptIDs: Self.prompt, options: GenerationOptions(maxTokens: 12))
        #expect(after.generatedIDs == before.generatedIDs)
        #expect(cluster.recoveries == 0)
    }

    /// The coordinator names what is wrong with a handshake instead of waiting out its connect
    /// timeout: a worker that does not trust its key, a worker that is not the one whose key it
    /// was given, and a worker with plain links.
    @Test func aFailedHandshakeIsNamed() async throws {
        let distrustful = try WorkerProcess(["--model", Self.model, "--coordinator-key=" + (try CurveKeyPair.generate().publicText)])
        defer { distrustful.kill() }
        await #expect {
            _ = try await makeCluster(model: Self.model, endpoints: [distrustful.endpoint]) { $0.connectTimeout = .seconds(30) }
        } throws: { error in
            "\(error)".contains(distrustful.endpoint) && "\(error)".contains("does not trust this coordinator's key")
        }

        let worker = try WorkerProcess(["--model", Self.model])
        defer { worker.kill() }
        let wrongKey = try CurveKeyPair.generate().publicKey
        let start = ContinuousClock.now
        await #expect {
            _ = try await makeCluster(model: Self.model, endpoints: [worker.endpoint]) {
                $0.connectTimeout = .seconds(30)
                $0.workerKeys[worker.endpoint] = wrongKey
            }
        } throws: { error in
            "\(error)".contains(worker.endpoint) && "\(error)".contains("key given for it")
        }
        #expect(ContinuousClock.now - start < .seconds(29))

        let plain = try WorkerProcess(["--model", Self.model, "--insecure"])
        defer { plain.kill() }
        await #expect {
            _ = try await makeCluster(model: Self.model, endpoints: [plain.endpoint]) {
                $0.connectTimeout = .seconds(30)
                $0.workerKeys[plain.endpoint] = wrongKey
            }
        } throws: { error in
            "\(error)".contains(plain.endpoint) && "\(error)".contains("--insecure")
        }
        #expect(plain.child.stderr.contains("not encrypted"), "\(plain.child.stderr)")
    }

    /// A capture of the loopback traffic (tcpdump) while a worker is streamed its stage and a
    /// prompt is answered holds no frame header in the clear ("STRA" and the protocol version)
    /// and no stage file header ("GGUF", version 3). With `--insecure` on both sides the same
    /// capture holds both: it does see the traffic.
    @Test(arguments: [false, true]) func aCaptureShowsNoPlaintext(insecure: Bool) async throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("strata-capture-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let plain = insecure ? ["--insecure"] : []
        let workers = [try WorkerProcess(["--model", Self.model] + plain),
                       try WorkerProcess(["--cache-dir", cache] + plain)]  // streamed its stage
        defer { workers.forEach { $0.kill() } }
        let ports = workers.map { $0.endpoint.split(separator: ":").last! }
        let capture = try PacketCapture(filter: ports.map { "tcp port \($0)" }.joined(separator: " or "))
        let cluster = try await makeCluster(model: Self.model, endpoints: workers.map(\.endpoint)) {
            if insecure { $0.security = .insecure }
        }
        let r = try await cluster.generate(promptIDs: Self.prompt, options: GenerationOptions(maxTokens: 16))
        cluster.shutdown()
        let bytes = try capture.stop()
        #expect(r.generatedIDs.count > 0)
        #expect(bytes.count > 30 << 20, "the capture holds \(bytes.count) bytes: less than the stage file streamed; \(capture.summary)")
        let frame = Wire.magic + [UInt8(Wire.protocolVersion), 0]
        let stageFile = Array("GGUF".utf8) + [3, 0, 0, 0]
        #expect(bytes.containsBytes(frame) == insecure, "frame header in the clear: \(bytes.containsBytes(frame))")
        #expect(bytes.containsBytes(stageFile) == insecure, "stage file header in the clear: \(bytes.containsBytes(stageFile))")
    }
}

/// tcpdump writing what crosses loopback under `filter` to a file, until `stop`.
final class PacketCapture {
    private let child: ChildProcess
    private let file = FileManager.default.temporaryDirectory.appendingPathComponent("strata-\(UUID().uuidString).pcap").path

    init(filter: String) throws {
        child = try ChildProcess(URL(fileURLWithPath: "/usr/bin/tcpdump"), ["-i", "lo", "-B", "262144", "-s", "0", "-Z", "root", "-w", file, filter])
        guard ChildProcess.poll(timeout: .seconds(10), { child.stderr.contains("listening on") || !child.isRunning }), child.isRunning else {
            throw CaptureError(description: "tcpdump did not start: \(child.stderr)")
        }
    }

    /// What tcpdump said (packets captured, and dropped).
    var summary: String { child.stderr }

    /// Stops the capture and returns the file's bytes (packet headers and payloads).
    func stop() throws -> [UInt8] {
        kill(child.process.processIdentifier, SIGINT)
        _ = child.wait(timeout: .seconds(10))
        defer { try? FileManager.default.removeItem(atPath: file) }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
    }

    struct CaptureError: Error, CustomStringConvertible { let description: String }
}

extension [UInt8] {
    /// Whether `needle` occurs anywhere in these bytes.
    func containsBytes(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { n in
                (0 ... hay.count - n.count).contains { i in hay[i] == n[0] && memcmp(hay.baseAddress! + i, n.baseAddress!, n.count) == 0 }
            }
        }
    }
}
