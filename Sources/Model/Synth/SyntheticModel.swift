import QuantKernels

/// A Llama GGUF with seeded random weights of a given shape: a model of a real model's size for
/// measuring speed, memory and a cluster's plan without downloading it.
///
/// Matrices are written straight in their quantized type (random payload bits, scale fields
/// set), a chunk at a time, so a file larger than memory can be made. Scales are chosen so every
/// row has an RMS of 1/√cols: activations keep their size through the layers. Each block's scale
/// gets a random sign, which keeps rows centred (Q4_0's nibbles minus 8 average −0.5: without the
/// sign every row would carry the same offset, which builds up until every step picks one token).
public struct SyntheticModel: Sendable {
    public var shape: ModelShape
    public var type: GGMLType
    public var seed: UInt64
    /// `tokenizer.*` metadata to copy (from another GGUF); nil for a byte-level vocabulary of
    /// `shape.vocab` tokens made here.
    public var tokenizer: [(key: String, value: GGUFValue)]?

    public init(shape: ModelShape, type: GGMLType, seed: UInt64 = 1, tokenizer: [(key: String, value: GGUFValue)]? = nil) {
        self.shape = shape; self.type = type; self.seed = seed; self.tokenizer = tokenizer
    }

    /// The `tokenizer.*` entries of a model file, and its vocabulary size.
    public static func tokenizer(of file: GGUFFile) throws(GGUFError) -> (entries: [(key: String, value: GGUFValue)], vocab: Int) {
        let entries = file.keys.filter { $0.hasPrefix("tokenizer.") }.compactMap { key in file.metadata[key].map { (key, $0) } }
        guard case let .array(_, tokens)? = file.metadata["tokenizer.ggml.tokens"] else {
            throw .missingKey("tokenizer.ggml.tokens")
        }
        return (entries, tokens.count)
    }

    /// Writes the model to `path` (through a temporary file renamed into place).
    public func write(to path: String) throws(GGUFError) {
        if let problem = shape.problem(blockSize: type.blockSize) {
            throw .invalidValue(key: "llama.embedding_length", reason: problem)
        }
        guard type.isWeightType else {
            throw .unsupportedTensorType(tensor: "synthetic weights", type: type.description)
        }
        var w = GGUFWriter()
        let s = shape
        w.add(key: "general.architecture", .string("llama"))
        w.add(key: "general.name", .string("synthetic \(s.name) (\(type), seed \(seed))"))
        w.add(key: "llama.context_length", .uint32(UInt32(s.context)))
        w.add(key: "llama.embedding_length", .uint32(UInt32(s.dim)))
        w.add(key: "llama.feed_forward_length", .uint32(UInt32(s.ffn)))
        w.add(key: "llama.block_count", .uint32(UInt32(s.layers)))
        w.add(key: "llama.attention.head_count", .uint32(UInt32(s.heads)))
        w.add(key: "llama.attention.head_count_kv", .uint32(UInt32(s.kvHeads)))
        w.add(key: "llama.rope.freq_base", .float32(s.ropeTheta))
        w.add(key: "llama.rope.dimension_count", .uint32(UInt32(s.headDim)))
        w.add(key: "llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.add(key: "llama.vocab_size", .uint32(UInt32(s.vocab)))
        for (key, value) in tokenizer ?? Self.byteLevelVocabulary(size: s.vocab) { w.add(key: key, value) }

        var index: UInt64 = 0
        func matrix(_ name: String, rows: Int, cols: Int) throws(GGUFError) {
            index += 1
            let generator = WeightGenerator(type: type, cols: cols, seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ index)
            try w.addTensor(name: name, dims: [cols, rows], type: type) { emit in generator.emitRows(rows, emit) }
        }
        func norm(_ name: String) throws(GGUFError) {
            index += 1
            var rng = Xoshiro256StarStar(seed: seed ^ (index << 32))
            try w.addTensor(name: name, dims: [s.dim], values: (0 ..< s.dim).map { _ in Float(0.9 + 0.2 * rng.nextUnitDouble()) })
        }

        try matrix(TensorName.tokenEmbedding, rows: s.vocab, cols: s.dim)
        for l in 0 ..< s.layers {
            try norm(TensorName.attnNorm(l))
            try matrix(TensorName.wq(l), rows: s.dim, cols: s.dim)
            try matrix(TensorName.wk(l), rows: s.kvDim, cols: s.dim)
            try matrix(TensorName.wv(l), rows: s.kvDim, cols: s.dim)
            try matrix(TensorName.wo(l), rows: s.dim, cols: s.dim)
            try norm(TensorName.ffnNorm(l))
            try matrix(TensorName.w1(l), rows: s.ffn, cols: s.dim)
            try matrix(TensorName.w3(l), rows: s.ffn, cols: s.dim)
            try matrix(TensorName.w2(l), rows: s.dim, cols: s.ffn)
        }
        try norm(TensorName.outputNorm)
        try matrix(TensorName.output, rows: s.vocab, cols: s.dim)
        try w.write(to: path)
    }

    /// A byte-level BPE vocabulary (`gpt2`, no merges): the 256 byte tokens, `<|endoftext|>` as
    /// BOS and EOS, then filler tokens up to `size`. Any text tokenizes to its bytes.
    static func byteLevelVocabulary(size: Int) -> [(key: String, value: GGUFValue)] {
        var tokens: [GGUFValue] = ByteLevel.encodedByte.map { .string(String(decoding: $0, as: UTF8.self)) }
        var types: [GGUFValue] = Array(repeating: .int32(1), count: 256)
        tokens.append(.string("<|endoftext|>"))
        types.append(.int32(3))
        while tokens.count < size {
            tokens.append(.string("<synthetic \(tokens.count)>"))
            types.append(.int32(1))
        }
        return [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(elementType: GGUFValue.Code.string.rawValue, Array(tokens.prefix(size)))),
            ("tokenizer.ggml.token_type", .array(elementType: GGUFValue.Code.int32.rawValue, Array(types.prefix(size)))),
            ("tokenizer.ggml.merges", .array(elementType: GGUFValue.Code.string.rawValue, [])),
            ("tokenizer.ggml.bos_token_id", .uint32(256)),
            ("tokenizer.ggml.eos_token_id", .uint32(256)),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
    }
}

/// Random rows of one weight type, scaled to an RMS of 1/√cols.
struct WeightGenerator: Sendable {
    let type: GGMLType
    let cols: Int
    let seed: UInt64

    /// Offsets of a block's f16 scale fields, and for the types with a min or an offset field,
    /// the offset of that field and the multiple of the scale it holds (centring the block).
    private var scaleFields: (scales: [Int], min: (offset: Int, factor: Float)?) {
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq4_nl, .iq4_xs: ([0], nil)
        case .q4_1: ([0], (2, -7.5))
        case .q5_1: ([0], (2, -15.5))
        case .q4_K: ([0], (2, 15))   // dmin = 15·d, and m = sc/2 in every sub-block (centreSubBlocks)
        case .q5_K: ([0], (2, 31))
        case .q6_K: ([208], nil)
        default: ([], nil)
        }
    }

    func emitRows(_ rows: Int, _ emit: GGUFWriter.Emit) {
        var rng = Xoshiro256StarStar(seed: seed)
        let target = 1 / Float(cols).squareRoot()
        let elements = rows * cols
        let chunkElements = max(type.blockSize, (1 << 20) / type.blockSize * type.blockSize)
        switch type {
        case .f32, .f16, .bf16:
            // Uniform in ±√3·target has RMS target.
            let a = target * Float(3).squareRoot()
            var done = 0
            while done < elements {
                let n = min(chunkElements, elements - done)
                let values = (0 ..< n).map { _ in Float(rng.nextUnitDouble() * 2 - 1) * a }
                switch type {
                case .f32: values.withUnsafeBytes { emit($0) }
                case .f16: values.map { Float16($0).bitPattern }.withUnsafeBytes { emit($0) }
                default: values.map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes { emit($0) }
                }
                done += n
            }
        default:
            let fields = scaleFields
            let scale = target / unitRMS()
            let positive = Float16(scale).bitPattern, negative = Float16(-scale).bitPattern
            let minimum = fields.min.map { (Float16($0.factor * scale).bitPattern, Float16(-$0.factor * scale).bitPattern) }
            let blockBytes = type.blockBytes
            let chunkBlocks = chunkElements / type.blockSize
            var buffer = [UInt64](repeating: 0, count: (chunkBlocks * blockBytes + 7) / 8)
            var done = 0
            while done < elements / type.blockSize {
                let n = min(chunkBlocks, elements / type.blockSize - done)
                for i in buffer.indices { buffer[i] = rng.next() }
                buffer.withUnsafeMutableBytes { raw in
                    var signs: UInt64 = 0
                    for b in 0 ..< n {
                        if b % 64 == 0 { signs = rng.next() }
                        let negate = (signs >> UInt64(b % 64)) & 1 == 1
                        let block = raw.baseAddress! + b * blockBytes
                        for offset in fields.scales { block.storeBytes(of: negate ? negative : positive, toByteOffset: offset, as: UInt16.self) }
                        if let field = fields.min, let minimum {
                            block.storeBytes(of: negate ? minimum.1 : minimum.0, toByteOffset: field.offset, as: UInt16.self)
                        }
                        if type == .q4_K || type == .q5_K { Self.centreSubBlocks(block + 4) }
                        if type == .q6_K { Self.evenSubBlockScales(block + 192) }
                    }
                    emit(UnsafeRawBufferPointer(rebasing: raw[0 ..< n * blockBytes]))
                }
                done += n
            }
        }
    }

    /// Q4_K / Q5_K: rewrites the 12 bytes of 6-bit sub-block scales and mins at `scales` so that
    /// each sub-block's scale sc is even (2...62, random from the bytes there) and its min is sc/2.
    /// With dmin = 15·d (Q4_K) or 31·d (Q5_K) each sub-block, d·sc·q − dmin·m, is then centred
    /// on the middle code, as a real quantizer's blocks are.
    static func centreSubBlocks(_ scales: UnsafeMutableRawPointer) {
        let bytes = scales.assumingMemoryBound(to: UInt8.self)
        var sc = [UInt8](repeating: 0, count: 8), m = [UInt8](repeating: 0, count: 8)
        for j in 0 ..< 8 {
            sc[j] = max(2, (bytes[j % 12] >> 2) & 0x3E)  // even, from the random byte
            m[j] = sc[j] / 2
        }
        for j in 0 ..< 4 {
            bytes[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
            bytes[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6)
            bytes[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4)
        }
    }

    /// Q6_K: the 16 int8 sub-block scales at `scales` get magnitudes 64...127 (random signs, from
    /// the random bytes there), as a quantizer's are for sub-blocks of similar range; scales near
    /// zero would make a few sub-blocks carry each row.
    static func evenSubBlockScales(_ scales: UnsafeMutableRawPointer) {
        let bytes = scales.assumingMemoryBound(to: UInt8.self)
        for j in 0 ..< 16 {
            let magnitude = 64 + Int(bytes[j] & 63)
            bytes[j] = UInt8(bitPattern: Int8(bytes[j] & 0x80 != 0 ? -magnitude : magnitude))
        }
    }

    /// RMS of this type's dequantized values when its scale fields are 1 (and mins centre).
    private func unitRMS() -> Float {
        var rng = Xoshiro256StarStar(seed: 0x5EED)
        let blocks = 256, blockBytes = type.blockBytes
        var bytes = (0 ..< blocks * blockBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let fields = scaleFields
        for b in 0 ..< blocks {
            for offset in fields.scales { Self.store(Float16(1).bitPattern, &bytes, at: b * blockBytes + offset) }
            if let field = fields.min { Self.store(Float16(field.factor).bitPattern, &bytes, at: b * blockBytes + field.offset) }
            if type == .q4_K || type == .q5_K { bytes.withUnsafeMutableBytes { Self.centreSubBlocks($0.baseAddress! + b * blockBytes + 4) } }
            if type == .q6_K { bytes.withUnsafeMutableBytes { Self.evenSubBlockScales($0.baseAddress! + b * blockBytes + 192) } }
        }
        var values = [Float](repeating: 0, count: blocks * type.blockSize)
        _ = qk_dequantize(type.rawValue, bytes, &values, Int64(values.count))
        let meanSquare = values.reduce(0) { $0 + Double($1) * Double($1) } / Double(values.count)
        return Float(meanSquare.squareRoot())
    }

    private static func store(_ v: UInt16, _ bytes: inout [UInt8], at offset: Int) {
        bytes[offset] = UInt8(v & 0xFF)
        bytes[offset + 1] = UInt8(v >> 8)
    }
}
