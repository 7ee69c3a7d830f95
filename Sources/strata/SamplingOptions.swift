import ArgumentParser
import StrataModel

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
