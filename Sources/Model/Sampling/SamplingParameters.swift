/// Settings for picking the next token from logits, with llama.cpp's meanings and defaults.
///
/// Each filter has a value that turns it off (noted per field), so `temperature: 0.8, topK: 0,
/// topP: 1, minP: 0` is plain temperature sampling over the whole vocabulary.
public struct SamplingParameters: Sendable, Equatable {
    /// Softmax temperature, applied after the filters. `0` (or less) => greedy: the argmax of the
    /// (penalized) logits, ties going to the lowest token id.
    public var temperature: Float
    /// Keep only the `topK` highest logits. `0` (or less) => disabled.
    public var topK: Int
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability sums to at
    /// least `topP` (the token that crosses the threshold is kept). `1` (or more) => disabled.
    public var topP: Float
    /// Drop tokens whose probability is below `minP` times the most likely token's.
    /// `0` (or less) => disabled.
    public var minP: Float
    /// Repetition penalty (CTRL-style, as llama.cpp's `penalty_repeat`): every token id seen in the
    /// last `repeatLastN` history entries has its logit divided by this value when positive and
    /// multiplied by it otherwise. `1` => disabled.
    public var repetitionPenalty: Float
    /// How many of the most recent history tokens the penalty looks at. `0` => disabled.
    public var repeatLastN: Int
    /// Seed of the random generator. `nil` => a fresh random seed per `Sampler`.
    /// The same seed and the same logits give the same tokens.
    public var seed: UInt64?

    /// Defaults are llama.cpp's (`common_params_sampling`): temperature 0.8, top-k 40, top-p 0.95,
    /// min-p 0.05, no repetition penalty, a 64-token penalty window.
    public init(
        temperature: Float = 0.8,
        topK: Int = 40,
        topP: Float = 0.95,
        minP: Float = 0.05,
        repetitionPenalty: Float = 1.0,
        repeatLastN: Int = 64,
        seed: UInt64? = nil
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repeatLastN = repeatLastN
        self.seed = seed
    }

    /// Greedy decoding: always the argmax (lowest id on ties), no penalty.
    public static let greedy = SamplingParameters(
        temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repeatLastN: 0, seed: 0)
}
