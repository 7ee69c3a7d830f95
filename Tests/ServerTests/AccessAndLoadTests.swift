import Foundation
import Synchronization
import Testing
import TestSupport

/// A server with an API key and room for one running and one waiting request.
@Suite(.serialized)
struct AccessAndLoadTests {
    static let key = "test-key-\(UInt32.random(in: 0 ... .max))"
    let server: ServerProcess

    init() throws {
        server = try ServerProcess(workers: 2, ["--api-key", Self.key, "--max-sequences", "1", "--max-waiting", "1",
                                                "--worker-timeout", "120"])
    }

    var auth: [String] { ["Authorization: Bearer \(Self.key)"] }

    /// Without the key, or with a wrong one: 401 with an OpenAI error; /health and /metrics stay
    /// open for probes and scrapers.
    @Test func apiKey() throws {
        let body = #"{"prompt": "Hello", "max_tokens": 2}"#
        let none = try CurlResult.post(server.url + "/v1/completions", body)
        #expect(none.status == 401 && none.error?.type == "authentication_error", "\(none.body)")
        let wrong = try CurlResult.post(server.url + "/v1/completions", body, headers: ["Authorization: Bearer nope"])
        #expect(wrong.status == 401, "\(wrong.body)")
        #expect(try CurlResult.get(server.url + "/status").status == 401)
        #expect(try CurlResult.post(server.url + "/v1/completions", body, headers: auth).status == 200)
        #expect(try CurlResult.get(server.url + "/health").status == 200)
        #expect(try CurlResult.get(server.url + "/metrics").status == 200)
        let run = try runOpenAIClient("auth", [server.url, Self.key])
        #expect(run.status == 0, "\(run.output)")
    }

    /// One running, one waiting: a third request is refused with 429 and a message that says
    /// why. A waiting client that goes away leaves the line; once both are gone, requests are
    /// taken again.
    @Test func fullLineAnswers429() throws {
        func stream() throws -> ChildProcess {
            try ChildProcess(URL(fileURLWithPath: "/usr/bin/curl"),
                             ["-sN", "-D", "-", "-X", "POST", server.url + "/v1/completions", "-H", "Authorization: Bearer \(Self.key)",
                              "--data-binary", #"{"prompt": "Once upon a time", "max_tokens": 1900, "stream": true}"#])
        }
        let running = try stream()
        #expect(ChildProcess.poll(timeout: .seconds(30)) { running.stdout.contains("data: {") }, "\(running.stdout)")
        // Hold the last worker, so that the running request cannot finish by itself meanwhile.
        let workers = try ChildProcess(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-P", "\(server.child.process.processIdentifier)"])
        _ = workers.wait(timeout: .seconds(10))
        let last = try #require(workers.stdout.split(separator: "\n").compactMap { Int32($0) }.max())
        kill(last, SIGSTOP)
        defer { kill(last, SIGCONT) }
        let waiting = try stream()
        #expect(ChildProcess.poll(timeout: .seconds(30)) { waiting.stdout.contains("200 OK") }, "\(waiting.stdout)")
        let third = try CurlResult.post(server.url + "/v1/completions", #"{"prompt": "Hi", "max_tokens": 2}"#, headers: auth)
        #expect(third.status == 429, "\(third.body)")
        #expect(third.error?.message.contains("busy") == true, "\(third.body)")
        let depth = try CurlResult.get(server.url + "/metrics").body
        #expect(samples("strata_queue_depth", in: depth).first?.value == 1, "\(depth)")
        // The waiting client leaves before its first token: the keep-alive comments find it
        // gone and it leaves the line while the first still runs.
        #expect(ChildProcess.poll(timeout: .seconds(10)) { waiting.stdout.contains(": keep-alive") }, "\(waiting.stdout)")
        waiting.kill()
        var left = ""
        // (The line empties as the scheduler drops the request; the cancellation is counted
        // when the request's handler sees it end, a moment later.)
        #expect(ChildProcess.poll(timeout: .seconds(10)) {
            left = (try? CurlResult.get(server.url + "/metrics").body) ?? ""
            return samples("strata_queue_depth", in: left).first?.value == 0
                && samples("strata_requests_cancelled_total", in: left).first?.value == 1
        }, "\(left)")
        #expect(samples("strata_requests_running", in: left).first?.value == 1, "\(running.stdout.suffix(400))")
        kill(last, SIGCONT)
        running.kill()
        var again: CurlResult?
        ChildProcess.poll(timeout: .seconds(30)) {
            again = try? CurlResult.post(server.url + "/v1/completions", #"{"prompt": "Hi", "max_tokens": 2}"#, headers: auth)
            return again?.status == 200
        }
        #expect(again?.status == 200, "\(again?.body ?? "")")
    }
}

/// A worker killed under a running request: the request ends with the text it would have had,
/// /health is 200 again, and `strata local` starts the worker again, back in the plan.
@Suite struct LostWorkerTests {
    @Test func killedWorkerIsReplacedAndStartedAgain() throws {
        let server = try ServerProcess(workers: 3)
        #expect(try CurlResult.get(server.url + "/health").status == 200)
        let body = #"{"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0}"#
        let undisturbed = try CurlResult.post(server.url + "/v1/completions", body)
        #expect(undisturbed.status == 200)
        let workers = try childProcesses(of: server.child.process.processIdentifier)
        #expect(workers.count == 3, "\(workers)")
        guard workers.count == 3 else { return }

        let answer = Mutex<CurlResult?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let r = try? CurlResult.post(server.url + "/v1/completions", body)
            answer.withLock { $0 = r }
            done.signal()
        }
        usleep(150_000)
        kill(workers[1], SIGKILL)
        #expect(done.wait(timeout: .now() + 60) == .success)
        let disturbed = answer.withLock { $0 }
        #expect(disturbed?.status == 200, "\(disturbed?.body ?? "no answer")")
        #expect(text(of: disturbed) == text(of: undisturbed) && text(of: undisturbed) != nil)

        // The worker runs again, on its address, and the plan has three stages again.
        #expect(ChildProcess.poll(timeout: .seconds(30)) {
            guard let status = try? CurlResult.get(server.url + "/status"), status.status == 200,
                  let stages = status.json?["stages"] as? [Any] else { return false }
            return stages.count == 3 && (try? CurlResult.get(server.url + "/health").status) == 200
        })
        let now = try childProcesses(of: server.child.process.processIdentifier)
        #expect(now.count == 3 && !now.contains(workers[1]), "\(now)")
        #expect(server.child.stderr.contains("exited (signal 9); starting it again"), "\(server.child.stderr)")
        #expect(samples("strata_ready", in: try CurlResult.get(server.url + "/metrics").body).first?.value == 1)
        let again = try CurlResult.post(server.url + "/v1/completions", body)
        #expect(text(of: again) == text(of: undisturbed))
    }

    private func text(of result: CurlResult?) -> String? {
        ((result?.json?["choices"] as? [[String: Any]])?.first?["text"]) as? String
    }

    private func childProcesses(of pid: Int32) throws -> [Int32] {
        let pgrep = try ChildProcess(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-P", String(pid)])
        _ = pgrep.wait(timeout: .seconds(10))
        return pgrep.stdout.split(separator: "\n").compactMap { Int32($0) }.sorted()
    }
}

/// The soak, short: greedy streams through `strata local --http` while workers are killed;
/// `strata soak` exits 0 only if no request was lost and every answer equals its undisturbed text.
@Suite struct SoakTests {
    @Test func shortSoakLosesNothing() throws {
        let soak = try ChildProcess.strata(["soak", "--model", TestPaths.defaultModel, "--threads", "1", "--requests", "24",
                                            "--concurrency", "8", "--prompts", "8", "--max-tokens", "12",
                                            "--kill-every", "1.5", "--max-kills", "2", "--time-limit", "300", "--json"])
        #expect(soak.wait(timeout: .seconds(400)) == 0, "\(soak.stdout)\n\(soak.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(soak.stdout.utf8)) as? [String: Any], "\(soak.stdout)")
        #expect(out["completed"] as? Int == 24 && out["lost"] as? Int == 0 && out["changed"] as? Int == 0, "\(out)")
        #expect(out["kills"] as? Int == 2, "\(out)")
    }
}
