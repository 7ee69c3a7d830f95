import TestSupport
import Foundation
import QuantKernels
import StrataModel
import Testing

/// QuantKernels' dequantizers and activation quantizers against an independent oracle: the PyPI
/// `gguf` package (gguf.quants, numpy), run as a real `python3 scripts/dequant_oracle.py` process.
/// CI installs python3 and `gguf==0.19.0`; when either is missing these tests fail (they do not skip).
@Suite struct DequantOracleTests {
    static let script = TestPaths.packageRoot.appendingPathComponent("scripts/dequant_oracle.py")

    /// Runs the oracle on (type name, input, output) triples; returns nil after recording a failure.
    static func runOracle(mode: String, jobs: [(String, URL, URL)]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, mode] + jobs.flatMap { [$0.0, $0.1.path, $0.2.path] }
        let stderr = Pipe()
        process.standardError = stderr
        do {
            try process.run()
        } catch {
            Issue.record("could not start python3 for \(script.path): \(error)")
            return false
        }
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            Issue.record("""
                dequant oracle failed (exit \(process.terminationStatus)); it needs python3 with numpy and \
                gguf (pip install gguf==0.19.0): \(message)
                """)
            return false
        }
        return true
    }

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qk-oracle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func readFloats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Every weight type's dequantization must equal gguf's exactly (same float operations in the
    /// same order: d*q + m as two roundings; F16 subnormals included).
    @Test func dequantizersMatchGGUF() throws {
        let types: [GGMLType] = [.f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .iq4_nl, .q4_K, .q5_K, .q6_K, .iq4_xs]
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 0x0DAC1E)
        var cases: [(GGMLType, Int, [UInt8], URL, URL)] = []
        for type in types {
            let count = type.blockSize == 1 ? 4096 : type.blockSize * 64
            let bytes = KernelTestData.randomWeights(type, count: count, rng: &rng)
            let input = dir.appendingPathComponent("\(type).bin"), output = dir.appendingPathComponent("\(type).f32")
            try Data(bytes).write(to: input)
            cases.append((type, count, bytes, input, output))
        }
        guard Self.runOracle(mode: "dequantize", jobs: cases.map { ("\($0.0)", $0.3, $0.4) }) else { return }
        for (type, count, bytes, _, output) in cases {
            let want = try Self.readFloats(output)
            let got = KernelTestData.dequantize(type, bytes, count: count)
            #expect(want.count == count, "\(type): oracle wrote \(want.count) values, expected \(count)")
            guard want.count == count else { continue }
            let mismatches = (0..<count).filter { got[$0].bitPattern != want[$0].bitPattern }
            #expect(mismatches.isEmpty, """
                \(type): \(mismatches.count) of \(count) values differ from gguf, first at \
                \(mismatches.first.map { "\($0): \(got[$0]) vs \(want[$0])" } ?? "")
                """)
            #expect(got.allSatisfy { $0.isFinite }, "\(type): non-finite value in test data")
        }
    }

    /// Activation quantization must be bit-exact with the oracle: Q8_0 through gguf.quants.quantize;
    /// Q8_1 and Q8_K through the script's own numpy transcription of ggml's reference (gguf has no
    /// quantizer for them). Inputs include exact ties (k + 0.5 steps), zeros and an all-zero block.
    @Test func activationQuantizationMatchesOracle() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SplitMix64(seed: 0xAC71)
        let n = 256 * 24
        var x = (0..<n).map { _ in Float.random(in: -3...3, using: &rng) }
        // Values landing exactly halfway between steps: block max 127, entries k + 0.5.
        for i in 0..<32 { x[i] = i == 0 ? 127 : Float(i % 20) + 0.5 - 10 }
        for i in 256..<512 { x[i] = 0 }                        // an all-zero block of every format
        for i in 512..<768 { x[i] = Float.random(in: -1e-3...1e-3, using: &rng) }
        for i in stride(from: 768, to: 1024, by: 7) { x[i] = 0 }

        // Weight types whose activation formats are Q8_0, Q8_1 and Q8_K.
        let formats: [(weight: GGMLType, name: String)] = [(.q8_0, "Q8_0"), (.q4_1, "Q8_1"), (.q6_K, "Q8_K")]
        let input = dir.appendingPathComponent("x.f32")
        try x.withUnsafeBytes { try Data($0).write(to: input) }
        var jobs: [(String, URL, URL)] = []
        for f in formats { jobs.append((f.name, input, dir.appendingPathComponent("\(f.name).bin"))) }
        guard Self.runOracle(mode: "quantize", jobs: jobs) else { return }
        for (f, job) in zip(formats, jobs) {
            let want = [UInt8](try Data(contentsOf: job.2))
            var got = [UInt8](repeating: 0xAA, count: qk_activation_row_bytes(f.weight.rawValue, Int64(n)))
            qk_quantize_activation(f.weight.rawValue, x, &got, Int64(n))
            #expect(want.count == got.count, "\(f.name): oracle wrote \(want.count) bytes, expected \(got.count)")
            guard want.count == got.count else { continue }
            let diff = (0..<got.count).filter { got[$0] != want[$0] }
            #expect(diff.isEmpty, "\(f.name): \(diff.count) bytes differ from the oracle, first at byte \(diff.first ?? -1)")
        }
    }

    /// F32 weights: activations pass through as f32.
    @Test func f32ActivationsAreCopied() {
        let x: [Float] = [1, -2, 3.5, 0]
        var out = [UInt8](repeating: 0, count: qk_activation_row_bytes(GGMLType.f32.rawValue, 4))
        #expect(out.count == 16)
        qk_quantize_activation(GGMLType.bf16.rawValue, x, &out, 4)
        #expect(out.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == x)
    }
}
