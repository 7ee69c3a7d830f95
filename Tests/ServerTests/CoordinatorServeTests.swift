import Foundation
import Testing
import TestSupport

/// `strata coordinator --http` over workers started apart, as on real hosts.
@Suite struct CoordinatorServeTests {
    /// A free TCP port on loopback, as the kernel hands one out.
    static func freePort() throws -> Int {
        let probe = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                     ["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
        _ = probe.wait(timeout: .seconds(10))
        return try #require(Int(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The API listens while the stages load: /health is 503 and generation is refused with 503
    /// until the last worker is up and loaded, then 200 and answers. SIGTERM ends it cleanly and
    /// `--stop-workers` stops the workers.
    @Test func healthWaitsForEveryStage() throws {
        let ports = try (0 ..< 2).map { _ in try Self.freePort() }
        let endpoints = ports.map { "tcp://127.0.0.1:\($0)" }
        // Each worker given with its key, as on real hosts: the second is not up yet.
        let keys = try (0 ..< 2).map { _ in try TestKeys.makeWorkerKeys() }
        let first = try WorkerProcess(listen: endpoints[0], keys: keys[0], ["--model", TestPaths.defaultModel])
        let coordinator = try ChildProcess.strata(["coordinator", "--model", TestPaths.defaultModel, "--threads", "1",
                                                   "--key", TestKeys.coordinatorKeyFile,
                                                   "--workers", zip(endpoints, keys).map { "\($0)=\($1.keys.publicText)" }.joined(separator: ","),
                                                   "--http", "127.0.0.1:0",
                                                   "--connect-timeout", "60", "--stop-workers", "--exit-with-parent"])
        var url: String?
        ChildProcess.poll(timeout: .seconds(30)) {
            if let r = coordinator.stderr.range(of: "serving the API at ") {
                url = coordinator.stderr[r.upperBound...].split(separator: " ").first.map(String.init)
            }
            return url != nil || !coordinator.isRunning
        }
        let base = try #require(url, "\(coordinator.stderr)")
        let loading = try CurlResult.get(base + "/health")
        #expect(loading.status == 503 && loading.json?["status"] as? String == "loading", "\(loading.body)")
        let early = try CurlResult.post(base + "/v1/completions", #"{"prompt": "Hello", "max_tokens": 2}"#)
        #expect(early.status == 503 && early.error?.message.contains("loading") == true, "\(early.body)")
        let metrics = try CurlResult.get(base + "/metrics")
        #expect(metrics.status == 200 && samples("strata_ready", in: metrics.body).first?.value == 0, "\(metrics.body)")

        let second = try WorkerProcess(listen: endpoints[1], keys: keys[1], ["--model", TestPaths.defaultModel])
        defer { first.kill(); second.kill() }
        #expect(ChildProcess.poll(timeout: .seconds(60)) { (try? CurlResult.get(base + "/health"))?.status == 200 }, "\(coordinator.stderr)")
        #expect(samples("strata_ready", in: try CurlResult.get(base + "/metrics").body).first?.value == 1)
        let answer = try CurlResult.post(base + "/v1/chat/completions",
                                         #"{"messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0}"#)
        let content = ((answer.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        #expect(answer.status == 200 && content?.isEmpty == false, "\(answer.body)")

        kill(coordinator.process.processIdentifier, SIGTERM)
        #expect(coordinator.wait(timeout: .seconds(30)) == 0, "\(coordinator.stderr)")
        #expect(first.child.wait(timeout: .seconds(15)) == 0)
        #expect(second.child.wait(timeout: .seconds(15)) == 0)
    }

    /// SIGINT while the stages load (here: a worker that never comes up) ends the coordinator
    /// within a moment, not when loading would have timed out.
    @Test func sigintWhileLoadingEndsAtOnce() throws {
        let port = try Self.freePort()
        let coordinator = try ChildProcess.strata(["coordinator", "--model", TestPaths.defaultModel, "--threads", "1",
                                                   "--workers", "tcp://127.0.0.1:\(port)", "--http", "127.0.0.1:0", "--insecure",
                                                   "--connect-timeout", "120", "--exit-with-parent"])
        #expect(ChildProcess.poll(timeout: .seconds(30)) { coordinator.stderr.contains("serving the API at ") || !coordinator.isRunning },
                "\(coordinator.stderr)")
        let start = ContinuousClock.now
        kill(coordinator.process.processIdentifier, SIGINT)
        #expect(coordinator.wait(timeout: .seconds(10)) == 0, "\(coordinator.stderr)")
        #expect(ContinuousClock.now - start < .seconds(4), "\(ContinuousClock.now - start)")
        #expect(coordinator.stderr.contains("stopped while loading"), "\(coordinator.stderr)")
    }
}
