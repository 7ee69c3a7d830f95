/// One sequence's generation, wherever its forward passes run: sampling, the stop conditions
/// and the text stream. The caller runs the model; this decides what comes next.
///
/// ```swift
/// var state = GenerationState(promptIDs: ids, options: options, tokenizer: tokenizer, contextLength: ctx)
/// while true {
///     let step = state.accept(logits: logitsOfLastPosition)
///     emit(step.text)
///     guard let next = step.next else { break }   // feed `next` at position state.history.count - 1
///     logitsOfLastPosition = forward(next)
/// }
/// emit(state.finish())
/// ```
public struct GenerationState {
    public let promptIDs: [Int32]
    public let options: GenerationOptions
    public let contextLength: Int
    public private(set) var generatedIDs: [Int32] = []
    /// Prompt and generated tokens.
    public private(set) var history: [Int32]
    /// Text emitted so far.
    public private(set) var text = ""
    /// Set once generation has ended.
    public private(set) var finishReason: FinishReason?

    private let endOfGeneration: Set<Int32>
    private var sampler: Sampler
    private var decoder: StreamingDecoder
    private var stops: StopStringMatcher
    /// False once a stop string or the caller ended the text: nothing more is flushed.
    private var flushText = true

    public init(promptIDs: [Int32], options: GenerationOptions, tokenizer: Tokenizer, contextLength: Int) {
        self.promptIDs = promptIDs
        self.options = options
        self.contextLength = contextLength
        history = promptIDs
        endOfGeneration = options.stopAtEndOfGeneration ? Set(tokenizer.endOfGenerationIDs) : []
        sampler = Sampler(options.sampling)
        decoder = StreamingDecoder(tokenizer: tokenizer, includeSpecial: false)
        stops = StopStringMatcher(stops: options.stopStrings)
        if options.maxTokens <= 0 { finishReason = .length }
    }

    public var isFinished: Bool { finishReason != nil }

    public struct Step {
        /// The sampled token.
        public var token: Int32
        /// Text that became final with it (possibly empty).
        public var text: String
        /// The token to run through the model next, or nil when generation has ended.
        public var next: Int32?
    }

    /// Samples from the logits of the last position and decides whether to go on.
    public mutating func accept(logits: [Float]) -> Step {
        precondition(finishReason == nil, "GenerationState.accept after the generation ended")
        let id = sampler.sample(logits: logits, history: history)
        generatedIDs.append(id)
        history.append(id)
        if endOfGeneration.contains(id) {
            finishReason = .stop
            return Step(token: id, text: "", next: nil)
        }
        let (emit, stopped) = stops.feed(decoder.append(id))
        text += emit
        if stopped {
            finishReason = .stop
            flushText = false
        } else if generatedIDs.count >= options.maxTokens || history.count >= contextLength {
            finishReason = .length
        }
        return Step(token: id, text: emit, next: finishReason == nil ? id : nil)
    }

    /// Ends the generation early (the client stopped listening): nothing more is emitted.
    public mutating func cancel() {
        if finishReason == nil { finishReason = .stop }
        flushText = false
    }

    /// Ends the generation and returns the text still held back (an incomplete character at
    /// the end, a prefix of a stop string that never completed).
    public mutating func finish() -> String {
        if finishReason == nil { finishReason = .length }
        guard flushText else { return "" }
        flushText = false
        let (emit, stopped) = stops.feed(decoder.flush())
        let rest = emit + (stopped ? "" : stops.flush())
        text += rest
        return rest
    }
}
