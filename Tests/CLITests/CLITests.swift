import Foundation
import Testing
import TestSupport

/// The `strata` command as a user runs it: a real process, its stdout, stderr and exit status.
struct CLITests {
    static let model = TestPaths.defaultModel
    static let refs = TestPaths.refs

    struct Run {
        /// nil when the run was killed at its timeout.
        let status: Int32?
        let stdout: String
        let stderr: String
        /// Ended by itself with a non-zero status (a timeout is not a clean refusal).
        var exitedWithError: Bool { status.map { $0 != 0 } ?? false }
    }

    /// Runs `strata ARGS` to the end; a run past `timeout` is killed (status nil).
    static func strata(_ args: [String], timeout: Duration = .seconds(120)) throws -> Run {
        let child = try ChildProcess.strata(args)
        let status = child.wait(timeout: timeout)
        return Run(status: status, stdout: child.stdout, stderr: child.stderr)
    }

    struct GenerateJSON: Decodable {
        let prompt_ids: [Int32]
        let generated_ids: [Int32]
        let text: String
        let prompt_tokens_per_second: Double
        let decode_tokens_per_second: Double
    }

    /// `generate --json` with the f32 path gives llama.cpp's greedy output for a raw prompt and
    /// for the same prompt through `--chat` (ChatML).
    @Test func generateJSONMatchesReference() throws {
        struct Ref: Decodable {
            struct P: Decodable { let name: String; let prompt_ids: [Int32]; let generated_ids: [Int32]; let generated_text: String }
            let prompts: [P]
        }
        let ref = try JSONDecoder().decode(Ref.self, from: Data(contentsOf: Self.refs.appendingPathComponent("greedy_f32.json")))
        let once = try #require(ref.prompts.first { $0.name == "once_upon" })
        let run = try Self.strata(["generate", "--model", Self.model, "--prompt", "Once upon a time", "-n", "32",
                                   "--precision", "f32", "--threads", "2", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let out = try JSONDecoder().decode(GenerateJSON.self, from: Data(run.stdout.utf8))
        #expect(out.prompt_ids == once.prompt_ids)
        #expect(out.generated_ids == once.generated_ids)
        #expect(out.text == once.generated_text)
        #expect(out.prompt_tokens_per_second > 0 && out.decode_tokens_per_second > 0)

        let chat = try #require(ref.prompts.first { $0.name == "chat_2plus2" })
        let chatRun = try Self.strata(["generate", "--model", Self.model, "--prompt", "What is 2+2?", "--chat",
                                       "--precision", "f32", "--json"])
        #expect(chatRun.status == 0, "\(chatRun.stderr)")
        let chatOut = try JSONDecoder().decode(GenerateJSON.self, from: Data(chatRun.stdout.utf8))
        #expect(chatOut.prompt_ids == chat.prompt_ids)
        #expect(chatOut.generated_ids == chat.generated_ids)
    }

    /// Sampling with a seed is reproducible run to run; another seed samples differently.
    @Test func seededSamplingIsReproducible() throws {
        func sample(seed: Int) throws -> [Int32] {
            let run = try Self.strata(["generate", "--model", Self.model, "--prompt", "Once upon a time", "-n", "24",
                                       "--temperature", "1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                                       "--seed", "\(seed)", "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            return try JSONDecoder().decode(GenerateJSON.self, from: Data(run.stdout.utf8)).generated_ids
        }
        let a = try sample(seed: 42), b = try sample(seed: 42)
        #expect(a == b)
        #expect(a.count == 24 || [0, 2, 4].contains(a.last!))  // or ended at an end-of-generation id
        let others = try (1 ... 3).map { try sample(seed: $0) }
        #expect(others.contains { $0 != a })
    }

    /// Streaming mode prints the text, then the speeds on stderr.
    @Test func generateStreamsTextAndSpeeds() throws {
        let run = try Self.strata(["generate", "--model", Self.model, "--prompt", "Once upon a time", "-n", "8"])
        #expect(run.status == 0)
        #expect(run.stdout.hasPrefix(", the city of"))
        #expect(run.stderr.contains("tokens/s"))
    }

    /// `strata plan` runs the planner on a 70B shape without a file: eight stages of ten layers
    /// on 7.5 GiB workers, each with its KV cache budget; too little memory is refused by name.
    @Test func planCutsA70BShapeWithoutTheFile() throws {
        let run = try Self.strata(["plan", "--shape", "llama-70b", "--type", "q4_k", "--workers", "8", "--memory", "7.5G"])
        #expect(run.status == 0, "\(run.stderr)")
        let stages = run.stdout.split(separator: "\n").filter { $0.first?.isNumber == true && $0.contains("positions") }
        #expect(stages.count == 8, "\(run.stdout)")
        for (i, line) in stages.enumerated() {
            #expect(line.hasPrefix("\(i)") && line.contains(" \(10 * i)-\(10 * i + 9) ") && line.contains("positions"), "\(line)")
        }
        #expect(run.stdout.contains("streaming every stage") && run.stdout.contains("tokens/s"))
        let small = try Self.strata(["plan", "--shape", "llama-70b", "--workers", "8", "--memory", "4G"])
        #expect(small.exitedWithError && small.stderr.contains("does not fit"), "\(small.stderr)")
    }

    @Test func tokenizePrintsIDs() throws {
        let run = try Self.strata(["tokenize", "--model", Self.model, "--text", "<|im_start|>user\nHi<|im_end|>"])
        #expect(run.status == 0)
        let ids = try JSONDecoder().decode([Int32].self, from: Data(run.stdout.utf8))
        #expect(ids.first == 1 && ids.last == 2)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("strata-bytes-\(UUID()).txt")
        try Data([0x48, 0x69, 0x0A, 0xFF, 0x20]).write(to: file)  // "Hi\n", an invalid byte, " "
        defer { try? FileManager.default.removeItem(at: file) }
        let bytes = try Self.strata(["tokenize", "--model", Self.model, "--file", file.path])
        #expect(bytes.status == 0, "\(bytes.stderr)")
        #expect(try JSONDecoder().decode([Int32].self, from: Data(bytes.stdout.utf8)).count >= 3)
    }

    @Test func inspectPrintsMetadataAndTensors() throws {
        let run = try Self.strata(["inspect", Self.model])
        #expect(run.status == 0)
        #expect(run.stdout.contains("general.architecture = \"llama\""))
        #expect(run.stdout.contains("blk.29.ffn_down.weight"))
        #expect(run.stdout.contains("30 layers"))
    }

    /// Bad input gets a clear message and a failing status, not a crash.
    /// `strata keygen NAME` writes a secret key only its owner may read and the public key,
    /// says the public key, and does not overwrite a pair without `--force`.
    @Test func keygenWritesAKeyPair() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-keygen-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = try Self.strata(["keygen", dir + "/worker-1"])
        #expect(made.status == 0, "\(made.stderr)")
        let secret = try FileManager.default.attributesOfItem(atPath: dir + "/worker-1.key")
        #expect(secret[.posixPermissions] as? Int == 0o600)
        let publicKey = try String(contentsOfFile: dir + "/worker-1.pub", encoding: .utf8).trimmingCharacters(in: .newlines)
        #expect(publicKey.count == 40 && made.stdout.contains("public key: \(publicKey)"))
        let again = try Self.strata(["keygen", dir + "/worker-1"])
        #expect(again.exitedWithError && again.stderr.contains("worker-1.key") && again.stderr.contains("--force"))
        let forced = try Self.strata(["keygen", dir + "/worker-1", "--force"])
        #expect(forced.status == 0)
        #expect(try String(contentsOfFile: dir + "/worker-1.pub", encoding: .utf8).trimmingCharacters(in: .newlines) != publicKey)
    }

    @Test func badInputIsAClearError() throws {
        let junk = FileManager.default.temporaryDirectory.appendingPathComponent("strata-junk-\(UUID()).gguf")
        try Data("this is not a model".utf8).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }
        let bad = try Self.strata(["generate", "--model", junk.path, "--prompt", "hi"])
        #expect(bad.exitedWithError)
        #expect(bad.stderr.contains("not a GGUF file"))

        let missing = try Self.strata(["inspect", "/nonexistent/model.gguf"])
        #expect(missing.exitedWithError)
        #expect(missing.stderr.contains("cannot open"))

        let long = String(repeating: "word ", count: 9000)
        let tooLong = try Self.strata(["generate", "--model", Self.model, "--prompt", long, "-n", "1"])
        #expect(tooLong.exitedWithError)
        #expect(tooLong.stderr.contains("context"))

        let badFlag = try Self.strata(["generate", "--model", Self.model, "--prompt", "hi", "--top-p", "2"])
        #expect(badFlag.exitedWithError)
        #expect(badFlag.stderr.contains("--top-p"))
    }
}
