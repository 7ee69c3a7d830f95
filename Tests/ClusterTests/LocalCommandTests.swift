import Foundation
import Testing
import TestSupport

/// `strata local` as a user runs it: the README's main command.
struct LocalCommandTests {
    struct Output: Decodable { let prompt_ids: [Int32]; let generated_ids: [Int32]; let text: String; let finish_reason: String }
    struct Ref: Decodable {
        struct P: Decodable { let name: String; let prompt_ids: [Int32]; let generated_ids: [Int32]; let generated_text: String }
        let prompts: [P]
    }

    /// Three workers and a coordinator answer two prompts at once; the chat prompt gets
    /// llama.cpp's greedy reference.
    @Test func localClusterAnswersWithTheReference() throws {
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: TestPaths.ref("greedy_f32.json")))
        let chat = try #require(ref.prompts.first { $0.name == "chat_2plus2" })
        let run = try ChildProcess.strata(["local", "--workers", "3", "--model", TestPaths.defaultModel, "--threads", "1",
                                           "--prompt", "Once upon a time", "--prompt", "What is 2+2?", "--chat",
                                           "-n", "32", "--json"])
        let status = run.wait(timeout: .seconds(120))
        #expect(status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map { Data($0.utf8) }
        #expect(lines.count == 2)
        let outs = try lines.map { try JSONDecoder().decode(Output.self, from: $0) }
        // --chat applies to both: the first prompt is the chat rendering of "Once upon a time",
        // so only the second has a reference; the first must still be a complete answer.
        #expect(outs.last?.prompt_ids == chat.prompt_ids)
        #expect(outs.last?.generated_ids == chat.generated_ids)
        #expect(outs.first.map { !$0.generated_ids.isEmpty } == true)
    }

    @Test func localClusterRawPromptMatchesReference() throws {
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: TestPaths.ref("greedy_f32.json")))
        let once = try #require(ref.prompts.first { $0.name == "once_upon" })
        let run = try ChildProcess.strata(["local", "--workers", "2", "--model", TestPaths.defaultModel, "--threads", "1",
                                           "--prompt", "Once upon a time", "-n", "32", "--json", "--activations", "f16"])
        #expect(run.wait(timeout: .seconds(120)) == 0, "\(run.stderr)")
        let out = try JSONDecoder().decode(Output.self, from: Data(run.stdout.utf8))
        #expect(out.prompt_ids == once.prompt_ids)
        #expect(out.generated_ids == once.generated_ids)
        #expect(out.text == once.generated_text)
    }

    /// SIGINT as soon as the API listens (the workers still loading) ends `strata local` and
    /// its workers within a moment.
    @Test func sigintWhileLoadingStopsEverything() throws {
        let run = try ChildProcess.strata(["local", "--workers", "3", "--model", TestPaths.defaultModel, "--threads", "1",
                                           "--http", "127.0.0.1:0"])
        #expect(ChildProcess.poll(timeout: .seconds(60)) { run.stderr.contains("serving the API at ") || !run.isRunning }, "\(run.stderr)")
        let children = try ChildProcess(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-P", "\(run.process.processIdentifier)"])
        _ = children.wait(timeout: .seconds(10))
        let workers = children.stdout.split(separator: "\n").compactMap { Int32($0) }
        #expect(workers.count == 3, "\(children.stdout)")
        let start = ContinuousClock.now
        kill(run.process.processIdentifier, SIGINT)
        #expect(run.wait(timeout: .seconds(10)) == 0, "\(run.stderr)")
        #expect(ContinuousClock.now - start < .seconds(4), "\(ContinuousClock.now - start)")
        #expect(ChildProcess.poll(timeout: .seconds(5)) { workers.allSatisfy { kill($0, 0) != 0 } }, "workers left running")
    }

    /// Bad flags are refused before any process starts.
    @Test func badFlagsAreNamed() throws {
        for (args, words) in [(["--workers", "0"], "--workers"), (["--partition", "explicit:0-3"], "--partition"),
                              (["--activations", "f8"], "--activations"), (["--log-level", "loud"], "--log-level")] {
            let run = try ChildProcess.strata(["local", "--model", TestPaths.defaultModel, "--prompt", "x"] + args)
            #expect(run.wait(timeout: .seconds(30)).map { $0 != 0 } == true, "refused, not timed out")
            #expect(run.stderr.contains(words), "\(args): \(run.stderr)")
        }
    }

    /// `--log-level info` shows the coordinator's and the workers' logs, with the stage and
    /// worker each line is about.
    @Test func logsCarryTheirStageAndWorker() throws {
        let run = try ChildProcess.strata(["local", "--workers", "2", "--model", TestPaths.defaultModel, "--threads", "1",
                                           "--prompt", "Hi", "-n", "2", "--log-level", "info"])
        #expect(run.wait(timeout: .seconds(120)) == 0, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        // The coordinator's: a stage loaded, naming both.
        #expect(lines.contains { $0.contains("strata.coordinator") && $0.contains("loaded layers") && $0.contains("stage=1") && $0.contains("worker=tcp://") },
                "\(run.stderr)")
        // A worker's: its name and, once assigned, its stage.
        #expect(lines.contains { $0.contains("strata.worker") && $0.contains("worker=worker-0") && $0.contains("stage=0") }, "\(run.stderr)")
    }
}
