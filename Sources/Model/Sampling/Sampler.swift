#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks next tokens from logits: llama.cpp's default sampler chain, reproducible under a seed.
///
/// The chain, in order (llama.cpp `common_params_sampling.samplers` minus the ones Strata does
/// not offer — DRY, top-n-σ, typical-p, XTC — then `dist`):
/// 1. repetition penalty over the last `repeatLastN` history tokens;
/// 2. top-k;
/// 3. top-p, on the softmax of the logits left after top-k (temperature 1);
/// 4. min-p, relative to the most likely token left (temperature 1);
/// 5. temperature;
/// 6. a random pick by the softmax of what is left.
/// With `temperature <= 0`, steps 2–6 collapse to the argmax of the penalized logits (the filters
/// always keep the argmax, so skipping them changes nothing), ties going to the lowest id.
///
/// A value type: copies carry their own generator state, so a copy replays the same draws.
public struct Sampler: Sendable {
    /// The settings this sampler was made with.
    public let parameters: SamplingParameters
    private var rng: Xoshiro256StarStar
    /// Penalized copy of the logits, kept between calls so the hot path does not allocate.
    private var penalized: [Float] = []
    /// The surviving (logit, id) pairs, reused between calls.
    private var candidates: [Candidate] = []

    /// Makes a sampler; `parameters.seed == nil` draws a seed from the system generator.
    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        self.rng = Xoshiro256StarStar(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
    }

    /// Picks the next token from raw logits (vocab-sized). `history` = prompt + generated ids so
    /// far; only the penalty reads it, and ids outside the vocabulary are ignored.
    public mutating func sample(logits: [Float], history: [Int32]) -> Int32 {
        logits.withUnsafeBufferPointer { sample(logits: $0, history: history) }
    }

    /// Same as `sample(logits:history:)`, reading the logits in place (e.g. from the output
    /// buffer of the forward pass) to avoid a copy.
    public mutating func sample(logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        precondition(!logits.isEmpty, "Sampler.sample: empty logits")
        let p = parameters
        let penaltyActive = p.repetitionPenalty != 1 && p.repeatLastN > 0 && !history.isEmpty
        if !penaltyActive {
            return pick(from: logits)
        }
        penalized.removeAll(keepingCapacity: true)
        penalized.append(contentsOf: logits)
        Sampler.applyRepetitionPenalty(
            to: &penalized, history: history.suffix(p.repeatLastN), penalty: p.repetitionPenalty)
        // Moved out so the closure below can take `self` mutably while reading it.
        let buffer = penalized
        return buffer.withUnsafeBufferPointer { pick(from: $0) }
    }

    /// Steps 2–6 of the chain on (already penalized) logits.
    private mutating func pick(from logits: UnsafeBufferPointer<Float>) -> Int32 {
        let p = parameters
        if p.temperature <= 0 {
            return Int32(Sampler.argmax(logits))
        }
        if p.topK > 0 && p.topK < logits.count {
            Sampler.selectTopK(logits, k: p.topK, into: &candidates)
        } else {
            Sampler.gatherAll(logits, into: &candidates)
        }
        if p.topP < 1 {
            Sampler.applyTopP(&candidates, p: p.topP)
        }
        if p.minP > 0 {
            Sampler.applyMinP(&candidates, p: p.minP)
        }
        return draw(from: candidates, temperature: p.temperature)
    }

    /// Softmax at `temperature`, then one uniform draw; always consumes exactly one random
    /// number, so the stream stays aligned whatever the filters left.
    private mutating func draw(from candidates: [Candidate], temperature: Float) -> Int32 {
        let u = rng.nextUnitDouble()
        var maxLogit = -Float.infinity
        for c in candidates where c.logit > maxLogit { maxLogit = c.logit }
        // Every logit is -inf (a fully masked vocabulary): nothing to weigh, take the first.
        guard maxLogit > -Float.infinity else { return candidates.min { $0.id < $1.id }!.id }
        let invT = Double(1 / temperature)
        var total = 0.0
        for c in candidates { total += Sampler.weight(c.logit, maxLogit, invT) }
        let target = u * total
        var cumulative = 0.0
        for c in candidates {
            cumulative += Sampler.weight(c.logit, maxLogit, invT)
            if target < cumulative { return c.id }
        }
        // Rounding left `target` at the very top: the last token with any weight.
        return candidates.last { Sampler.weight($0.logit, maxLogit, invT) > 0 }!.id
    }

    @inline(__always)
    private static func weight(_ logit: Float, _ maxLogit: Float, _ invT: Double) -> Double {
        exp(Double(logit - maxLogit) * invT)
    }
}

/// A surviving token: its (possibly penalized) logit and id.
struct Candidate: Sendable {
    var logit: Float
    var id: Int32

    /// Higher logit first; the lower id first among equal logits, so results never depend on
    /// the sort algorithm.
    @inline(__always) static func ranksAbove(_ a: Candidate, _ b: Candidate) -> Bool {
        a.logit > b.logit || (a.logit == b.logit && a.id < b.id)
    }
}
