import ArgumentParser
import Foundation
import StrataAPI
import Synchronization

/// `strata soak`: a local cluster serving the HTTP API (`strata local --http`, a real child
/// process with real worker processes), many greedy streaming requests through it, and a worker
/// killed (SIGKILL) every so often. Every answer is checked against the text of the same prompt
/// before any kill; it reports what the clients saw: requests lost or changed, the longest gap
/// between two tokens of a stream, and how long /health took to answer 200 after each kill.
/// Exits with status 1 if any request was lost or changed.
struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream greedy requests through a local cluster while killing workers; check every answer and report token gaps and recovery times.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Worker processes of the local cluster.")
    var workers = 3

    @Option(help: "Requests in all.")
    var requests = 1000

    @Option(help: "Requests streaming at once.")
    var concurrency = 16

    @Option(help: "Distinct prompts the requests cycle through.")
    var prompts = 32

    @Option(help: "Tokens each request generates.")
    var maxTokens = 32

    @Option(help: "Seconds between two kills of a worker (the first comes after this long).")
    var killEvery: Double = 20

    @Option(help: "Most workers killed in all.")
    var maxKills = 10

    @Option(help: "Seconds the soak may take; requests not done by then count as lost.")
    var timeLimit: Double = 1800

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: "Write the local cluster's log (at --log-level info) to this file at the end.")
    var serverLog: String?

    struct Output: Encodable {
        var requests: Int
        var completed: Int
        var lost: Int
        var changed: Int
        var kills: Int
        var workers_started_again: Int
        var seconds: Double
        var tokens_per_second: Double
        /// The longest gap between two tokens of one stream, in the undisturbed pass and in the soak.
        var undisturbed_longest_gap_ms: Double
        var longest_gap_ms: Double
        /// For each kill, the longest gap of a stream that spans it.
        var gaps_across_kills_ms: [Double]
        /// For each kill, how long until /health answered 200 again, and whether it answered
        /// anything else meanwhile.
        var health_200_after_kill_ms: [Double]
        var health_not_200_seen: [Bool]
        var first_failures: [String]
    }

    func validate() throws {
        guard workers >= 2 else { throw ValidationError("--workers must be at least 2: one is killed at a time") }
        guard requests >= 1, concurrency >= 1, prompts >= 1, maxTokens >= 1 else {
            throw ValidationError("--requests, --concurrency, --prompts and --max-tokens must be at least 1")
        }
        guard killEvery > 0, timeLimit > 0, maxKills >= 0 else { throw ValidationError("--kill-every and --time-limit must be positive") }
    }

    func run() async throws {
        let server = try LocalServer(workers: workers, model: try modelOptions.path, threads: modelOptions.threads,
                                     logLevel: serverLog == nil ? nil : "info")
        defer {
            server.stop()
            if let serverLog { try? server.log.write(toFile: serverLog, atomically: true, encoding: .utf8) }
        }
        let client = try APIClient(server: server.url, apiKey: nil)
        let texts = (0 ..< prompts).map { "Request \($0): list \($0 % 7 + 3) things found in a kitchen, one per line." }

        // The undisturbed answers, at the same concurrency.
        writeErr("soak: \(server.url), \(workers) workers; \(prompts) prompts undisturbed first\n")
        let reference = try await runAll(client, texts, count: prompts, deadline: .now + .seconds(timeLimit))
        guard reference.failures.isEmpty else {
            throw ValidationError("the undisturbed pass failed: \(reference.failures.prefix(3).joined(separator: "; "))")
        }
        let expected = reference.answers.map { $0 ?? "" }

        // The soak, with a worker killed every --kill-every seconds.
        writeErr("soak: \(requests) requests, \(concurrency) at once, a worker killed every \(killEvery) s (at most \(maxKills))\n")
        let started = ContinuousClock.now
        let kills = Killer(server: server, client: client, every: .milliseconds(Int(killEvery * 1000)), most: maxKills)
        let killer = Task.detached { await kills.run() }
        let soak = try await runAll(client, texts, count: requests, deadline: started + .seconds(timeLimit))
        killer.cancel()
        _ = await killer.value
        let seconds = (ContinuousClock.now - started).totalSeconds

        var changed: [String] = []
        for (i, answer) in soak.answers.enumerated() {
            if let answer, answer != expected[i % prompts] {
                changed.append("request \(i): \(answer.debugDescription) instead of \(expected[i % prompts].debugDescription)")
            }
        }
        let killTimes = kills.events.map(\.at)
        let out = Output(
            requests: requests, completed: soak.answers.count { $0 != nil }, lost: soak.answers.count { $0 == nil },
            changed: changed.count, kills: killTimes.count, workers_started_again: server.restarts,
            seconds: seconds, tokens_per_second: Double(soak.tokens) / seconds,
            undisturbed_longest_gap_ms: reference.streams.map(\.longestGap).max().map(\.milliseconds).map(Double.init) ?? 0,
            longest_gap_ms: soak.streams.map(\.longestGap).max().map { Double($0.milliseconds) } ?? 0,
            gaps_across_kills_ms: killTimes.map { t in Double(soak.streams.compactMap { $0.gap(across: t) }.max()?.milliseconds ?? 0) },
            health_200_after_kill_ms: kills.events.map { Double($0.healthAfter.milliseconds) },
            health_not_200_seen: kills.events.map(\.sawUnhealthy),
            first_failures: Array((soak.failures + changed).prefix(5)))
        if json { print(try jsonString(out)) } else { report(out) }
        if out.lost > 0 || out.changed > 0 { throw ExitCode(1) }
    }

    private func report(_ o: Output) {
        print(String(format: "requests   %d: %d completed, %d lost, %d changed; %.1f s, %.1f tokens/s in all",
                     o.requests, o.completed, o.lost, o.changed, o.seconds, o.tokens_per_second))
        print("kills      \(o.kills) (workers started again by strata local: \(o.workers_started_again))")
        print(String(format: "token gap  longest %.0f ms in the soak (undisturbed: %.0f ms)", o.longest_gap_ms, o.undisturbed_longest_gap_ms))
        if !o.gaps_across_kills_ms.isEmpty {
            print(String(format: "           across a kill: median %.0f ms, max %.0f ms", median(o.gaps_across_kills_ms), o.gaps_across_kills_ms.max() ?? 0))
            print(String(format: "/health    200 again after a kill: median %.0f ms, max %.0f ms; not 200 at some moment after %d of %d kills",
                         median(o.health_200_after_kill_ms), o.health_200_after_kill_ms.max() ?? 0,
                         o.health_not_200_seen.count { $0 }, o.kills))
        }
        for f in o.first_failures { print("failure    \(f)") }
    }

    // MARK: Requests

    /// One stream's token arrival times.
    struct Stream: Sendable {
        var times: [ContinuousClock.Instant] = []
        var longestGap: Duration { zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .zero }
        /// The gap between the two tokens around `t`, if the stream was running then.
        func gap(across t: ContinuousClock.Instant) -> Duration? {
            zip(times, times.dropFirst()).first { $0 <= t && t < $1 }.map { $1 - $0 }
        }
    }

    struct Run: Sendable {
        var answers: [String?]
        var streams: [Stream]
        var failures: [String]
        var tokens: Int
    }

    /// Streams `count` requests, `concurrency` at once, request i asking for prompt i mod
    /// prompts; those not done by `deadline` are left unanswered.
    private func runAll(_ client: APIClient, _ texts: [String], count: Int, deadline: ContinuousClock.Instant) async throws -> Run {
        let next = Counter()
        let maxTokens = maxTokens
        let results = await withTaskGroup(of: [(Int, Result<(String, Stream, Int), any Error>)].self) { group in
            for _ in 0 ..< min(concurrency, count) {
                group.addTask {
                    var mine: [(Int, Result<(String, Stream, Int), any Error>)] = []
                    while ContinuousClock.now < deadline {
                        let i = next.take()
                        guard i < count else { break }
                        var fields = SamplingFields()
                        fields.max_tokens = Number(maxTokens)
                        fields.temperature = 0
                        var stream = Stream()
                        do {
                            let r = try await RemoteGeneration.run(client, chat: nil, prompt: .one(texts[i % texts.count]), fields: fields) { _ in
                                stream.times.append(.now)
                            }
                            mine.append((i, .success((r.text, stream, r.completionTokens))))
                        } catch {
                            mine.append((i, .failure(error)))
                        }
                    }
                    return mine
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        var run = Run(answers: [String?](repeating: nil, count: count), streams: [], failures: [], tokens: 0)
        for (i, r) in results {
            switch r {
            case let .success((text, stream, tokens)):
                run.answers[i] = text
                run.streams.append(stream)
                run.tokens += tokens
            case let .failure(error):
                run.failures.append("request \(i): \(error)")
            }
        }
        return run
    }
}

/// Kills one worker of the local server at a time, round robin, and times /health's return.
private final class Killer: Sendable {
    struct Event: Sendable {
        var at: ContinuousClock.Instant
        var healthAfter: Duration
        var sawUnhealthy: Bool
    }

    private let server: LocalServer
    private let client: APIClient
    private let every: Duration
    private let most: Int
    private let recorded = Mutex<[Event]>([])
    var events: [Event] { recorded.withLock { $0 } }

    init(server: LocalServer, client: APIClient, every: Duration, most: Int) {
        self.server = server; self.client = client; self.every = every; self.most = most
    }

    func run() async {
        var victim = 0
        for _ in 0 ..< most {
            do { try await Task.sleep(for: every) } catch { return }
            let pids = server.workerProcesses()
            guard !pids.isEmpty else { continue }
            let pid = pids[victim % pids.count]
            victim += 1
            let at = ContinuousClock.now
            kill(pid, SIGKILL)
            writeErr("soak: killed worker process \(pid)\n")
            var unhealthy = false
            while !Task.isCancelled {
                let ok = (try? await client.get("/health", as: HealthAnswer.self))?.status == "ok"
                if ok { break }
                unhealthy = true
                try? await Task.sleep(for: .milliseconds(10))
            }
            recorded.withLock { $0.append(Event(at: at, healthAfter: .now - at, sawUnhealthy: unhealthy)) }
        }
    }

    private struct HealthAnswer: Decodable { var status: String }
}

/// `strata local --http 127.0.0.1:0` of this same binary, as a child process.
final class LocalServer: Sendable {
    let url: String
    private let process: Process
    private let output = Output()

    private final class Output: Sendable {
        let text = Mutex("")
    }

    init(workers: Int, model: String, threads: Int, logLevel: String? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        p.arguments = ["local", "--workers", "\(workers)", "--model", model, "--threads", "\(threads)", "--http", "127.0.0.1:0",
                       "--exit-with-parent"] + (logLevel.map { ["--log-level", $0] } ?? [])
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let output = output
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { handle.readabilityHandler = nil; return }
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        let deadline = ContinuousClock.now + .seconds(300)
        var found: String?
        while ContinuousClock.now < deadline && p.isRunning {
            let text = output.text.withLock { $0 }
            if found == nil, let r = text.range(of: "serving the API at ") {
                found = text[r.upperBound...].split(separator: " ").first.map(String.init)
            }
            if found != nil && text.contains("every stage is loaded; ready") { break }
            usleep(20_000)
        }
        guard let found, p.isRunning else {
            if p.isRunning { p.terminate() }
            throw ValidationError("strata local did not start: \(output.text.withLock { $0 })")
        }
        url = found
    }

    /// The worker processes (the children of the local cluster's process), in order of start.
    func workerProcesses() -> [Int32] {
        // Each thread lists the children it started.
        let tasks = "/proc/\(process.processIdentifier)/task"
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
        let text = threads.compactMap { try? String(contentsOfFile: "\(tasks)/\($0)/children", encoding: .utf8) }.joined(separator: " ")
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.sorted()
    }

    /// What it printed on stderr so far.
    var log: String { output.text.withLock { $0 } }

    /// Workers `strata local` started again after they died.
    var restarts: Int { output.text.withLock { $0.components(separatedBy: "starting it again").count - 1 } }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

/// Hands out 0, 1, 2, … to any number of tasks.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
