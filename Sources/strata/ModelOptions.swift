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
    var precision: Precision = .fast

    func validate() throws {
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
    }

    /// Opens the file, loads every layer with embedding and head, and the tokenizer. Shows
    /// progress on stderr when loading takes more than a moment.
    func load(contextLength: Int? = nil) throws -> (gguf: GGUFFile, engine: LlamaEngine, tokenizer: Tokenizer) {
        let gguf = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: gguf)
        let progress = LoadProgress()
        let weights = try LlamaWeights(gguf: gguf, layers: 0 ..< config.nLayers, embedding: true, head: true,
                                       precision: precision, progress: progress.update)
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
