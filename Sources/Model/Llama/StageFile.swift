/// A GGUF holding one pipeline stage's share of a model: the model's architecture metadata and
/// only the tensors of a range of decoder layers. The coordinator streams it to a worker that has
/// no copy of the model; the worker caches it and loads it like any model file.
public enum StageFile {
    /// Metadata key naming the SHA-256 (hex) of the model the stage was cut from.
    public static let modelKey = "strata.stage.model_sha256"
    /// Metadata keys of the layer range, `start ..< end`.
    public static let layerStartKey = "strata.stage.layer_start"
    public static let layerEndKey = "strata.stage.layer_end"

    /// The stage file for `layers` of `model`, as a writer whose tensors are read from the model
    /// file only as the stage file is written or streamed (`GGUFWriter.chunks(of:)`): nothing of
    /// the model is held in memory. Tokenizer metadata stays behind (the coordinator owns the
    /// tokenizer); the vocabulary size is written explicitly because the stage has no embedding
    /// table to read it from.
    public static func writer(from model: GGUFFile, layers: Range<Int>, modelSHA256 hex: String) throws(GGUFError) -> GGUFWriter {
        let config = try LlamaConfig(gguf: model)
        guard layers.lowerBound >= 0, layers.upperBound <= config.nLayers, !layers.isEmpty else {
            throw .invalidValue(key: "llama.block_count", reason: "stage layers \(layers) are not within 0..<\(config.nLayers)")
        }
        var w = GGUFWriter()
        for key in model.keys where !key.hasPrefix("tokenizer.") {
            if let value = model.metadata[key] { w.add(key: key, value) }
        }
        let arch = try model.string("general.architecture")
        w.add(key: "\(arch).vocab_size", .uint32(UInt32(config.vocabSize)))
        w.add(key: modelKey, .string(hex))
        w.add(key: layerStartKey, .uint32(UInt32(layers.lowerBound)))
        w.add(key: layerEndKey, .uint32(UInt32(layers.upperBound)))
        for name in try tensorNames(in: model, layers: layers) {
            let info = model.tensorInfo(name)!
            try w.addTensor(name: name, dims: info.dims, type: info.type, copyingFrom: model.path, offset: model.dataOffset + info.offset)
        }
        return w
    }

    /// Bytes of the weights of `layers` (every tensor of them, as stored).
    public static func weightBytes(in model: GGUFFile, layers: Range<Int>) throws(GGUFError) -> Int {
        try tensorNames(in: model, layers: layers).reduce(0) { $0 + (model.tensorInfo($1)?.byteCount ?? 0) }
    }

    /// Bytes of what the coordinator holds: the token embedding, the final norm and the output
    /// head (the embedding again when the model ties them).
    public static func coordinatorBytes(in model: GGUFFile) -> Int {
        [TensorName.tokenEmbedding, TensorName.outputNorm, TensorName.output].reduce(0) { $0 + (model.tensorInfo($1)?.byteCount ?? 0) }
    }

    /// The tensors a stage of `layers` holds: every tensor of those layers, and the RoPE
    /// frequency factors when the model has them.
    public static func tensorNames(in model: GGUFFile, layers: Range<Int>) throws(GGUFError) -> [String] {
        var names = layers.flatMap { TensorName.layer($0) }
        if model.tensorInfo(TensorName.ropeFreqs) != nil { names.append(TensorName.ropeFreqs) }
        for name in names where model.tensorInfo(name) == nil { throw .missingTensor(name) }
        return names
    }

    /// The model SHA-256 (hex) and layer range a stage file says it holds, or nil for a whole
    /// model file.
    public static func identity(of file: GGUFFile) -> (modelSHA256: String, layers: Range<Int>)? {
        guard let sha = try? file.optionalString(modelKey),
              let start = try? file.optionalInt(layerStartKey), let end = try? file.optionalInt(layerEndKey),
              start < end else { return nil }
        return (sha, start ..< end)
    }
}
