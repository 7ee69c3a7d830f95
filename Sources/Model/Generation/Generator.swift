import Foundation

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation ends when the text contains one of these (the stop string is not emitted).
    public var stopStrings: [String]
    /// Stop at the vocabulary's end-of-generation tokens (included in `generatedIDs`, not in `text`).
    public var stopAtEndOfGeneration: Bool

    public init(maxTokens: Int = 128, sampling: SamplingParameters = .greedy, stopStrings: [String] = [],
                stopAtEndOfGeneration: Bool = true) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
    }
}

public enum FinishReason: String, Sendable, Codable {
    case length, stop
}

public struct GenerationResult: Sendable {
    public var promptIDs: [Int32]
    public var generatedIDs: [Int32]
    public var text: String
    public var finishReason: FinishReason
    /// Wall time of the prompt's forward pass (prefill) and of the decode steps after it.
    public var promptSeconds: Double
    public var decodeSeconds: Double
    /// Single-token forward passes run after the prompt.
    public var decodeSteps: Int

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptIDs.count) / promptSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeSteps) / decodeSeconds : 0 }

    public init(promptIDs: [Int32], generatedIDs: [Int32], text: String, finishReason: FinishReason,
                promptSeconds: Double, decodeSeconds: Double, decodeSteps: Int) {
        self.promptIDs = promptIDs
        self.generatedIDs = generatedIDs
        self.text = text
        self.finishReason = finishReason
        self.promptSeconds = promptSeconds
        self.decodeSeconds = decodeSeconds
        self.decodeSteps = decodeSteps
    }
}

public enum GenerationError: Error, CustomStringConvertible {
    case emptyPrompt
    case promptTooLong(tokens: Int, contextLength: Int)
    case inference(InferenceError)

    public var description: String {
        switch self {
        case .emptyPrompt: "the prompt is empty"
        case let .promptTooLong(n, ctx): "the prompt has \(n) tokens; the context holds \(ctx)"
        case let .inference(e): e.description
        }
    }
}

/// Generates text in one process: the whole model on one engine.
public final class Generator {
    public let engine: LlamaEngine
    public let tokenizer: Tokenizer
    public let contextLength: Int
    private let cache: KVCacheStore
    private var nextSequence: SequenceID = 1
    /// Prompt tokens per forward pass during prefill.
    public var prefillChunk = 512

    public init(engine: LlamaEngine, tokenizer: Tokenizer, contextLength: Int? = nil) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.contextLength = min(contextLength ?? engine.config.contextLength, engine.config.contextLength)
        cache = engine.makeCache(maxSequences: 1, contextLength: self.contextLength)
    }

    /// Generates from `promptIDs`. `onText` receives text as it is produced (never half a
    /// character, never part of a stop string) and may return false to stop early.
    public func generate(promptIDs: [Int32], options: GenerationOptions,
                         onText: (String) -> Bool = { _ in true }) throws(GenerationError) -> GenerationResult {
        guard !promptIDs.isEmpty else { throw .emptyPrompt }
        guard promptIDs.count < contextLength else { throw .promptTooLong(tokens: promptIDs.count, contextLength: contextLength) }
        let seq = nextSequence
        nextSequence += 1
        defer { cache.release(seq) }

        var state = GenerationState(promptIDs: promptIDs, options: options, tokenizer: tokenizer, contextLength: contextLength)
        let clock = ContinuousClock()
        let start = clock.now
        var logits: [Float] = []
        do throws(InferenceError) {
            var done = 0
            while done < promptIDs.count {
                let chunk = Array(promptIDs[done ..< min(done + prefillChunk, promptIDs.count)])
                var x = try engine.embed(chunk)
                let batch = chunk.indices.map { BatchToken(sequence: seq, position: done + $0) }
                try engine.forward(&x, batch: batch, cache: cache)
                done += chunk.count
                if done == promptIDs.count { logits = try engine.logits(x, rows: [chunk.count - 1]) }
            }
        } catch { throw .inference(error) }
        let promptSeconds = (clock.now - start).totalSeconds

        let decodeStart = clock.now
        var steps = 0
        while !state.isFinished {
            let step = state.accept(logits: logits)
            if !step.text.isEmpty && !onText(step.text) { state.cancel(); break }
            guard let next = step.next else { break }
            do throws(InferenceError) {
                var x = try engine.embed([next])
                try engine.forward(&x, batch: [BatchToken(sequence: seq, position: state.history.count - 1)], cache: cache)
                logits = try engine.logits(x, rows: [0])
            } catch { throw .inference(error) }
            steps += 1
        }
        let rest = state.finish()
        if !rest.isEmpty { _ = onText(rest) }
        return GenerationResult(promptIDs: promptIDs, generatedIDs: state.generatedIDs, text: state.text,
                                finishReason: state.finishReason ?? .length,
                                promptSeconds: promptSeconds, decodeSeconds: (clock.now - decodeStart).totalSeconds,
                                decodeSteps: steps)
    }
}

