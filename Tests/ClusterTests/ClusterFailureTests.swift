import Foundation
import Synchronization
import StrataCoordinator
import StrataModel
import StrataWire
import TestSupport
import Testing
import ZeroMQ

/// What goes wrong is named to the user within a timeout: nothing hangs, nothing is left running.
@Suite(.serialized)
struct ClusterFailureTests {
    static let tiny = TinyModel(nLayers: 4, contextLength: 64, seed: 5)

    @Test func unreachableWorkerIsNamed() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A port nobody listens on: the error names it and the timeout that ran out.
        await #expect {
            _ = try await makeCluster(model: path, endpoints: ["tcp://127.0.0.1:9"]) {
                $0.connectTimeout = .seconds(2)
                $0.workerKeys["tcp://127.0.0.1:9"] = TestKeys.coordinator.publicKey  // any key: nothing answers
            }
        } throws: { error in
            "\(error)".contains("tcp://127.0.0.1:9") && "\(error)".contains("did not answer within 2 s")
        }
    }

    /// Every worker lost: requests fail at once naming it, /health's view says so, nothing hangs;
    /// the coordinator still stops cleanly.
    @Test func everyWorkerLostIsNamed() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint))
        defer { cluster.shutdown(stopWorkers: true) }
        _ = try await cluster.generate(promptIDs: [1, 2, 3], options: GenerationOptions(maxTokens: 4))
        workers.forEach { $0.kill() }
        #expect(await ChildProcess.poll(timeout: .seconds(20)) { if case .unavailable = cluster.health { true } else { false } })
        await #expect { _ = try await cluster.generate(promptIDs: [1], options: GenerationOptions(maxTokens: 1)) } throws: { error in
            "\(error)".contains("no worker is left") && "\(error)".contains("lost")
        }
        #expect(cluster.failure == nil)
    }

    @Test func workerWithAnotherModelIsRefused() async throws {
        let path = try Self.tiny.write()
        var other = Self.tiny
        other.seed = 99
        let otherPath = try other.write()
        defer { for p in [path, otherPath] { try? FileManager.default.removeItem(atPath: p) } }
        let workers = try startWorkers(1, model: path) + [try WorkerProcess(["--model", otherPath])]
        defer { workers.forEach { $0.kill() } }
        await #expect {
            _ = try await makeCluster(model: path, endpoints: workers.map(\.endpoint))
        } throws: { error in
            let text = "\(error)"
            return text.contains(workers[1].endpoint) && text.contains("differs") && text.contains("in tensor blk.")
        }
    }

    @Test func assignmentBeyondMaxMemoryIsRefused() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path, ["--max-memory", "64K"])
        defer { workers.forEach { $0.kill() } }
        // An even split that cannot fit names the stage, its worker and what it offers.
        await #expect {
            _ = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.partition = .even; $0.maxSequences = 64 }
        } throws: { error in
            "\(error)".contains(workers[0].endpoint) && "\(error)".contains("offers 64 KiB") && "\(error)".contains("KV cache")
        }
        // The memory-weighted split sees it cannot fit before assigning anything.
        await #expect {
            _ = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.maxSequences = 64 }
        } throws: { error in
            "\(error)".contains("does not fit")
        }
    }

    @Test func promptPastTheContextIsRefused() async throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try startWorkers(2, model: path)
        defer { workers.forEach { $0.kill() } }
        let cluster = try await makeCluster(model: path, endpoints: workers.map(\.endpoint)) { $0.contextLength = 32 }
        defer { cluster.shutdown(stopWorkers: true) }
        await #expect {
            _ = try await cluster.generate(promptIDs: [Int32](repeating: 3, count: 40), options: GenerationOptions(maxTokens: 4))
        } throws: { "\($0)".contains("40 tokens") && "\($0)".contains("32") }
        // Generation stops at the context instead of overflowing it.
        let r = try await cluster.generate(promptIDs: [Int32](repeating: 3, count: 20), options: GenerationOptions(maxTokens: 100))
        #expect(r.generatedIDs.count == 12 && r.finishReason == .length)
    }

    /// A peer that speaks the next protocol version: the coordinator names the mismatch, and the worker
    /// answers such a peer with an error frame rather than silence.
    @Test func otherProtocolVersionIsNamed() async throws {
        let context = try ZMQContext()
        let fakeKeys = try CurveKeyPair.generate()
        let fake = try ZMQSocket(context, type: .router)
        try fake.setCurveServer(secretKey: fakeKeys.secretKey)
        try fake.bind("tcp://127.0.0.1:*")
        let endpoint = try fake.lastEndpoint()
        let done = Flag()
        let peer = Thread {
            // Answer every frame with a hello whose header says the next version.
            while !done.isSet {
                guard (try? ZMQ.poll([(fake, .readable)], timeoutMilliseconds: 100))?.first?.contains(.readable) == true,
                      let frames = try? fake.receive(dontWait: true), frames.count == 2 else { continue }
                var reply = WireMessage.hello(Hello(role: .worker, peerID: "future", appVersion: "9.0")).encoded()
                reply[4] = UInt8(Wire.protocolVersion + 1)
                reply[5] = 0
                _ = try? fake.send([frames[0], reply])
            }
        }
        peer.start()
        defer { done.set() }
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        await #expect {
            _ = try await makeCluster(model: path, endpoints: [endpoint]) { $0.workerKeys[endpoint] = fakeKeys.publicKey }
        } throws: { error in
            "\(error)".contains("protocol version \(Wire.protocolVersion + 1)") && "\(error)".contains(endpoint)
        }

        // And the other way: our worker answers a next-version hello with an error naming both versions.
        let worker = try WorkerProcess([])
        defer { worker.kill() }
        let dealer = try coordinatorLink(context, to: worker)
        var hello = WireMessage.hello(Hello(role: .coordinator, peerID: "future", appVersion: "9.0")).encoded()
        hello[4] = UInt8(Wire.protocolVersion + 1)
        try dealer.send(hello)
        let ready = try ZMQ.poll([(dealer, .readable)], timeoutMilliseconds: 5000)
        #expect(ready[0].contains(.readable))
        let answer = try #require(try dealer.receive(dontWait: true)?.last)
        guard case let .error(e) = try WireMessage.decode(answer) else { Issue.record("expected an error frame"); return }
        #expect(e.code == .unsupportedVersion)
        #expect(e.message.contains("\(Wire.protocolVersion + 1)") && e.message.contains("\(Wire.protocolVersion)"))
        dealer.close()
        fake.close()
    }
}

/// A flag set on one thread and read on another.
final class Flag: Sendable {
    private let value = Synchronization.Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
