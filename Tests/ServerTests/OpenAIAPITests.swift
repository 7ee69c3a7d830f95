import Foundation
import Testing
import TestSupport

/// The HTTP API against a real local cluster, with clients nobody here wrote: the `openai`
/// Python package and curl. Serialized: the disconnect test reads the workers' KV cache, which
/// must be its sequence's alone.
@Suite(.serialized)
struct OpenAIAPITests {
    /// Completions, chats and streamed chats through the `openai` package give llama.cpp's
    /// greedy reference text, with the reference's token counts as usage.
    @Test func openaiPackageMatchesReference() throws {
        let s = try server()
        let run = try runOpenAIClient("reference", [s.url, TestPaths.ref("greedy_f32.json").path])
        #expect(run.status == 0, "\(run.output)")
        let result = run.report["result"] as? [String: Any]
        #expect((result?["completions"] as? [Any])?.count == 3, "\(run.output)")
        #expect((result?["chats"] as? [Any])?.count == 2, "\(run.output)")
    }

    /// A client that closes its stream mid-way cancels the sequence: the KV cache it held on
    /// every worker is freed (seen through /metrics), and the cancellation is counted.
    @Test func disconnectFreesTheKVCache() throws {
        let s = try server()
        let run = try runOpenAIClient("disconnect", [s.url])
        #expect(run.status == 0, "\(run.output)")
        // And the server goes on answering.
        let after = try CurlResult.post(s.url + "/v1/completions", #"{"prompt": "Hello", "max_tokens": 3}"#)
        #expect(after.status == 200, "\(after.body)")
    }

    /// Errors the `openai` package raises as its own classes (NotFoundError, BadRequestError).
    @Test func openaiPackageSeesErrors() throws {
        let s = try server()
        let run = try runOpenAIClient("errors", [s.url])
        #expect(run.status == 0, "\(run.output)")
        #expect((run.report["result"] as? [String: Any])?.count == 5, "\(run.output)")
    }

    /// Bad requests get a 4xx with an OpenAI error object naming the problem; nothing crashes.
    @Test(arguments: [
        ("/v1/completions", #"{"prompt": "hi""#, 400, "not valid JSON"),
        ("/v1/completions", #"[1, 2, 3]"#, 400, "must be a JSON object"),
        ("/v1/completions", "", 400, "empty"),
        ("/v1/completions", #"{"max_tokens": 4}"#, 400, "'prompt' is required"),
        ("/v1/completions", #"{"prompt": 5}"#, 400, "'prompt' must be"),
        ("/v1/completions", #"{"prompt": "hi", "max_tokens": "ten"}"#, 400, "'max_tokens' must be an integer"),
        ("/v1/completions", #"{"prompt": "hi", "max_tokens": 2.5}"#, 400, "max_tokens"),
        ("/v1/completions", #"{"prompt": "hi", "max_tokens": 0}"#, 400, "'max_tokens' must be between 1 and"),
        ("/v1/completions", #"{"prompt": "hi", "max_tokens": 100000}"#, 400, "'max_tokens' must be between 1 and"),
        ("/v1/completions", #"{"prompt": "hi", "stream": "yes"}"#, 400, "'stream' must be a boolean"),
        ("/v1/completions", #"{"prompt": "hi", "temperature": -1}"#, 400, "'temperature'"),
        ("/v1/completions", #"{"prompt": "hi", "top_p": 0}"#, 400, "'top_p'"),
        ("/v1/completions", #"{"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}"#, 400, "'stop'"),
        ("/v1/completions", #"{"prompt": "hi", "n": 3}"#, 400, "'n'"),
        ("/v1/completions", #"{"prompt": "hi", "logprobs": 1e300}"#, 400, "'logprobs'"),
        ("/v1/completions", #"{"prompt": "hi", "top_k": 1e300}"#, 400, "'top_k' must be an integer"),
        ("/v1/completions", #"{"prompt": "hi", "seed": -1.5}"#, 400, "'seed' must be an integer"),
        ("/v1/completions", #"{"prompt": [99999999]}"#, 400, "not in the vocabulary"),
        ("/v1/completions", #"{"prompt": "hi", "model": "gpt-4o"}"#, 404, "'gpt-4o' does not exist"),
        ("/v1/chat/completions", #"{"messages": "hi"}"#, 400, "'messages'"),
        ("/v1/chat/completions", #"{"messages": []}"#, 400, "'messages' must not be empty"),
        ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": 42}]}"#, 400, "messages[0].content"),
        ("/v1/chat/completions", #"{"messages": [{"role": "robot", "content": "hi"}]}"#, 400, "'robot'"),
        ("/v1/chat/completions", #"{"messages": [{"content": "hi"}]}"#, 400, "messages[0].role"),
    ])
    func badRequest(path: String, body: String, status: Int, names: String) throws {
        let s = try server()
        let r = try CurlResult.post(s.url + path, body)
        #expect(r.status == status, "\(body) → \(r.status) \(r.body)")
        let error = try #require(r.error, "no OpenAI error object: \(r.body)")
        #expect(error.message.contains(names) || error.param == names, "\(body) → \(r.body)")
        #expect(error.type == (status == 404 ? "not_found_error" : "invalid_request_error"))
    }

    /// A prompt longer than the context, as text: refused before it reaches a worker.
    @Test func promptLongerThanTheContext() throws {
        let s = try server()
        let prompt = String(repeating: "hello ", count: 3000)
        let r = try CurlResult.post(s.url + "/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 4}"#)
        #expect(r.status == 400)
        #expect(r.error?.message.contains("context") == true, "\(r.body)")
        #expect((r.json?["error"] as? [String: Any])?["code"] as? String == "context_length_exceeded")
        // Prompt and max_tokens together past the context: also refused, naming both.
        let both = try CurlResult.post(s.url + "/v1/completions", #"{"prompt": "\#(String(repeating: "hello ", count: 1500))", "max_tokens": 1000}"#)
        #expect(both.status == 400 && both.error?.message.contains("to generate") == true, "\(both.body)")
    }

    /// Unknown routes, a body past the limit: still OpenAI error objects; the server lives on.
    @Test func unknownRouteAndHugeBody() throws {
        let s = try server()
        let missing = try CurlResult.get(s.url + "/v1/engines")
        #expect(missing.status == 404 && missing.error != nil, "\(missing.body)")
        let huge = FileManager.default.temporaryDirectory.appendingPathComponent("strata-huge-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: huge) }
        try Data(("{\"prompt\": \"" + String(repeating: "a", count: 5 << 20) + "\"}").utf8).write(to: huge)
        let big = try CurlResult.run(["-X", "POST", s.url + "/v1/completions", "-H", "Content-Type: application/json",
                                      "--data-binary", "@" + huge.path])
        #expect(big.status == 413, "\(big.body.prefix(300))")
        let health = try CurlResult.get(s.url + "/health")
        #expect(health.status == 200 && health.json?["status"] as? String == "ok", "\(health.body)")
    }

    /// The model list names the served model; /v1/models/{id} answers for it and 404s others.
    @Test func models() throws {
        let s = try server()
        let list = try CurlResult.get(s.url + "/v1/models")
        let data = list.json?["data"] as? [[String: Any]]
        #expect(list.status == 200 && data?.first?["id"] as? String == "SmolLM2-135M-Instruct.Q4_1", "\(list.body)")
        #expect(try CurlResult.get(s.url + "/v1/models/SmolLM2-135M-Instruct.Q4_1").status == 200)
        #expect(try CurlResult.get(s.url + "/v1/models/other").status == 404)
    }

    /// /metrics is Prometheus text that the Prometheus project's own parser reads, with every
    /// family the API has always had and of its type, histograms cumulative, and counts that
    /// follow the requests made.
    @Test func metricsExposition() throws {
        let s = try server()
        let before = try CurlResult.get(s.url + "/metrics").body
        let generatedBefore = samples("strata_generated_tokens_total", in: before).first?.value ?? -1
        let r = try CurlResult.post(s.url + "/v1/completions", #"{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}"#)
        #expect(r.status == 200)
        let completion = ((r.json?["usage"] as? [String: Any])?["completion_tokens"] as? Int) ?? 0
        let m = try CurlResult.get(s.url + "/metrics")
        #expect(m.status == 200)
        let text = m.body
        let families = try prometheusFamilies(text)
        let expected = [
            "strata_requests": "counter", "strata_requests_cancelled": "counter", "strata_prompt_tokens": "counter",
            "strata_generated_tokens": "counter", "strata_time_to_first_token_seconds": "histogram",
            "strata_inter_token_latency_seconds": "histogram", "strata_request_duration_seconds": "histogram",
            "strata_stage_compute_seconds": "histogram", "strata_hop_latency_seconds": "histogram", "strata_ready": "gauge",
            "strata_requests_running": "gauge", "strata_queue_depth": "gauge", "strata_queue_capacity": "gauge",
            "strata_stage_layers": "gauge", "strata_worker_kv_cache_bytes": "gauge", "strata_worker_kv_cache_sequences": "gauge",
            "strata_worker_weight_bytes": "gauge", "strata_worker_resident_bytes": "gauge",
        ]
        for (name, type) in expected { #expect(families[name] == type, "\(name): \(families[name] ?? "missing")") }
        #expect(samples("strata_generated_tokens_total", in: text).first?.value == generatedBefore + Double(completion))
        // Two stages: compute time per stage, KV per worker.
        #expect(Set(samples("strata_stage_compute_seconds_count", in: text).map(\.labels)).count == 2)
        #expect(samples("strata_worker_kv_cache_bytes", in: text).count == 2)
        for name in ["strata_time_to_first_token_seconds", "strata_hop_latency_seconds"] {
            let buckets = samples(name + "_bucket", in: text).map(\.value)
            #expect(buckets == buckets.sorted(), "\(name) buckets are not cumulative")
            #expect(buckets.last == samples(name + "_count", in: text).first?.value)
            #expect((buckets.last ?? 0) > 0)
        }
        let ok = samples("strata_requests_total", in: text).first { $0.labels.contains(#"endpoint="/v1/completions""#) && $0.labels.contains(#"status="200""#) }
        #expect((ok?.value ?? 0) >= 1)
    }

    /// The README's curl examples, run as written against a live server.
    @Test func readmeCurlExamples() throws {
        let s = try server()
        let readme = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- serve-examples -->"))
        let end = try #require(readme.range(of: "<!-- /serve-examples -->"))
        let section = readme[start.upperBound ..< end.lowerBound].replacingOccurrences(of: "\\\n", with: " ")
        let commands = section.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("curl ") }
        #expect(commands.count >= 5)
        for command in commands {
            let run = try ChildProcess(URL(fileURLWithPath: "/bin/bash"),
                                       ["-c", command.replacingOccurrences(of: "http://127.0.0.1:8080", with: s.url)])
            #expect(run.wait(timeout: .seconds(120)) == 0, "\(command): \(run.stderr)")
            let out = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!out.isEmpty, "\(command) printed nothing")
            if command.contains("\"stream\": true") {
                #expect(out.hasSuffix("data: [DONE]"), "\(command): \(out.suffix(200))")
            } else if command.contains("/metrics") {
                #expect(out.contains("strata_"), "\(command): \(out.prefix(200))")
            } else {
                let json = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
                #expect(json != nil && json?["error"] == nil, "\(command): \(out.prefix(300))")
            }
        }
    }

    /// The command line as a client: status shows the stages, generate streams through the API.
    @Test func commandLineClient() throws {
        let s = try server()
        let status = try ChildProcess.strata(["status", "--server", s.url])
        #expect(status.wait(timeout: .seconds(30)) == 0, "\(status.stderr)")
        #expect(status.stdout.contains("0-14") && status.stdout.contains("15-29"), "\(status.stdout)")
        #expect(status.stdout.contains("tcp://127.0.0.1:"), "\(status.stdout)")
        let json = try ChildProcess.strata(["status", "--server", s.url, "--json"])
        #expect(json.wait(timeout: .seconds(30)) == 0)
        let parsed = (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) as? [String: Any]
        #expect((parsed?["stages"] as? [Any])?.count == 2, "\(json.stdout)")

        let ref = try JSONDecoder().decode(GreedyRef.self, from: Data(contentsOf: TestPaths.ref("greedy_f32.json")))
        let once = try #require(ref.prompts.first { $0.name == "once_upon" })
        let generate = try ChildProcess.strata(["generate", "--server", s.url, "--prompt", "Once upon a time",
                                                "-n", String(once.generated_ids.count), "--json"])
        #expect(generate.wait(timeout: .seconds(60)) == 0, "\(generate.stderr)")
        let out = (try? JSONSerialization.jsonObject(with: Data(generate.stdout.utf8))) as? [String: Any]
        #expect(out?["text"] as? String == once.generated_text, "\(generate.stdout)")
        #expect(out?["completion_tokens"] as? Int == once.generated_ids.count)

        // chat: two turns over the API, each reply printed after its prompt.
        let chat = try ChildProcess.strata(["chat", "--server", s.url, "-n", "24"], input: "What is 2+2?\nAnd what is 3+3?\n")
        #expect(chat.wait(timeout: .seconds(60)) == 0, "\(chat.stderr)")
        let turns = chat.stdout.components(separatedBy: "> ").dropFirst().map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(turns.count == 3 && turns[0].hasPrefix("The answer is 4") && !turns[1].isEmpty && turns[2].isEmpty, "\(chat.stdout)")

        let unreachable = try ChildProcess.strata(["status", "--server", "http://127.0.0.1:1"])
        #expect(unreachable.wait(timeout: .seconds(30)) != 0)
        #expect(unreachable.stderr.contains("cannot reach"), "\(unreachable.stderr)")
    }

    struct GreedyRef: Decodable {
        struct P: Decodable { let name: String; let generated_ids: [Int32]; let generated_text: String }
        let prompts: [P]
    }
}
