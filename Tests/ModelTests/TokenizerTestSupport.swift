import TestSupport
import Foundation
import StrataModel

/// Where the tokenizer tests find their inputs: the default model under `<package>/models/`
/// (git-ignored) and the llama.cpp references under `Tests/References/`.
enum TokenizerFixtures {
    static let refs = TestPaths.refs
    static let smolPath = TestPaths.defaultModel
    static let spmPath = TestPaths.ref("fixtures/tok_spm.gguf").path
    static let llama3Path = TestPaths.ref("fixtures/tok_llama3.gguf").path

    // Loaded once per test process: the Llama 3 vocabulary is big.
    static let smol: Tokenizer? = try? Tokenizer(gguf: GGUFFile(path: smolPath))
    static let spm: Tokenizer? = try? Tokenizer(gguf: GGUFFile(path: spmPath))
    static let llama3: Tokenizer? = try? Tokenizer(gguf: GGUFFile(path: llama3Path))

    struct SmolCase: Decodable {
        let text: String
        let ids: [Int32]
        let ids_no_parse_special: [Int32]
    }

    struct FixtureCase: Decodable {
        let name: String
        let text: String
        let text_utf8_hex: String
        let ids: [Int32]
        let ids_no_parse_special: [Int32]
        let sentencepiece_ids: [Int32]?

        /// The exact bytes of the text (JSON strings pass through `String`; the hex does not).
        var bytes: [UInt8] {
            var out: [UInt8] = []
            var i = text_utf8_hex.startIndex
            while i < text_utf8_hex.endIndex {
                let j = text_utf8_hex.index(i, offsetBy: 2)
                out.append(UInt8(text_utf8_hex[i ..< j], radix: 16)!)
                i = j
            }
            return out
        }
    }

    struct FixtureFile: Decodable {
        let cases: [FixtureCase]
    }

    static func smolCases() throws -> [SmolCase] {
        try JSONDecoder().decode([SmolCase].self, from: Data(contentsOf: refs.appendingPathComponent("tokenize.json")))
    }

    static func fixtureCases(_ name: String) throws -> [FixtureCase] {
        try JSONDecoder().decode(FixtureFile.self, from: Data(contentsOf: refs.appendingPathComponent("fixtures/\(name)"))).cases
    }
}

/// Writes a minimal GGUF v3 file with metadata only (no tensors), for tokenizer error tests.
struct MiniGGUF {
    private var kvs: [(String, [UInt8])] = []

    mutating func string(_ key: String, _ value: String) {
        kvs.append((key, Self.u32(8) + Self.str(value)))
    }

    mutating func bool(_ key: String, _ value: Bool) {
        kvs.append((key, Self.u32(7) + [value ? 1 : 0]))
    }

    mutating func strings(_ key: String, _ values: [String]) {
        kvs.append((key, Self.u32(9) + Self.u32(8) + Self.u64(UInt64(values.count)) + values.flatMap(Self.str)))
    }

    mutating func int32s(_ key: String, _ values: [Int32]) {
        kvs.append((key, Self.u32(9) + Self.u32(5) + Self.u64(UInt64(values.count))
                + values.flatMap { Self.u32(UInt32(bitPattern: $0)) }))
    }

    func write() throws -> String {
        var bytes = Array("GGUF".utf8) + Self.u32(3) + Self.u64(0) + Self.u64(UInt64(kvs.count))
        for (key, value) in kvs { bytes += Self.str(key) + value }
        while bytes.count % 32 != 0 { bytes.append(0) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("strata-tok-\(UUID().uuidString).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    private static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    private static func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }
}
