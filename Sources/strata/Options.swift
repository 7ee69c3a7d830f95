import ArgumentParser
import Foundation
import StrataModel

/// Which model file, how to compute, on how many threads.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model file (generate and chat may take --server instead).")
    var model: String?

    /// The model file; every command but a client's generate and chat needs one.
    var path: String {
        get throws {
            guard let model else { throw ValidationError("give --model PATH (a GGUF file)") }
            return model
        }
    }

    @Option(name: .long, help: "Compute threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: "fast (weights as stored, 16-bit activations), q8 (8-bit activations in quantized products, as llama.cpp), or f32 (dequantized weights: the reference).")
    var precision: String = "fast"

    func validate() throws {
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        guard Precision(rawValue: precision) != nil else { throw ValidationError("--precision must be one of: fast, q8, f32") }
    }

    /// Opens the file, loads every layer with embedding and head, and the tokenizer. Shows
    /// progress on stderr when loading takes more than a moment.
    func load(contextLength: Int? = nil) throws -> (gguf: GGUFFile, engine: LlamaEngine, tokenizer: Tokenizer) {
        let gguf = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: gguf)
        let progress = LoadProgress()
        let weights = try LlamaWeights(gguf: gguf, layers: 0 ..< config.nLayers, embedding: true, head: true,
                                       precision: Precision(rawValue: precision)!, progress: progress.update)
        progress.finish()
        let tokenizer = try Tokenizer(gguf: gguf)
        return (gguf, LlamaEngine(weights: weights, threads: threads), tokenizer)
    }
}

/// A progress line on stderr, shown only once loading has taken more than half a second.
final class LoadProgress {
    private let start = ContinuousClock.now
    private var shown = false
    private var lastPercent = -1

    func update(_ fraction: Double) {
        guard ContinuousClock.now - start > .milliseconds(500) else { return }
        let percent = Int(fraction * 100)
        guard percent != lastPercent else { return }
        lastPercent = percent
        shown = true
        FileHandle.standardError.write(Data("\rloading weights: \(percent)%".utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\rloading weights: done  \n".utf8)) }
    }
}

/// Sampling flags shared by the commands that generate.
struct SamplingOptions: ParsableArguments {
    @Option(name: [.customShort("n"), .long], help: "Tokens to generate at most.")
    var maxTokens: Int = 128

    @Option(help: "Temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Top-k (0 disables).")
    var topK: Int = 40

    @Option(help: "Top-p (1 disables).")
    var topP: Float = 0.95

    @Option(help: "Min-p (0 disables).")
    var minP: Float = 0.05

    @Option(help: "Repetition penalty (1 disables).")
    var repeatPenalty: Float = 1.0

    @Option(help: "Random seed, for reproducible sampling.")
    var seed: UInt64?

    @Option(name: .customLong("stop"), help: "A stop string (repeatable).")
    var stops: [String] = []

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("-n must not be negative") }
        guard temperature >= 0 else { throw ValidationError("--temperature must not be negative") }
        guard topK >= 0 else { throw ValidationError("--top-k must not be negative") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard minP >= 0, minP <= 1 else { throw ValidationError("--min-p must be in [0, 1]") }
        guard repeatPenalty > 0 else { throw ValidationError("--repeat-penalty must be positive") }
    }

    var generationOptions: GenerationOptions {
        let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                          repetitionPenalty: repeatPenalty, seed: seed)
        return GenerationOptions(maxTokens: maxTokens, sampling: sampling, stopStrings: stops)
    }
}

/// Writes to stdout without buffering delays, for streaming text.
func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

func writeErr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

extension Tokenizer {
    var bosText: String { bosID.flatMap(tokenText) ?? "" }
    var eosText: String { eosID.flatMap(tokenText) ?? "" }
}
