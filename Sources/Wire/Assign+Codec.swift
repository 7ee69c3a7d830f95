/// Assign body: model identity, layerStart u32, layerEnd u32, layerCount u32, stageIndex u16,
/// stageCount u16, contextLength u32, maxSequences u32, batchRows u32, activationType u8, nextEndpoint string,
/// nextCurvePublicKey (u8 length, 0 or 32 bytes), previousCurvePublicKey (the same), tensorDigests (u16 count; each a name string
/// and a SHA-256 with a u8 length, exactly 32), stageFileBytes u64, plan u32, then the kept
/// caches: fromPlan u32 (0: none, and nothing follows but zeros), rebuildStart u32, rebuildEnd
/// u32, rebuildFromLog bool, sendOn bool, sequences (u16 count; each sequence u64, length u32).
extension Assign {
    func write(to w: inout ByteWriter) {
        model.write(to: &w)
        w.u32(layerStart)
        w.u32(layerEnd)
        w.u32(layerCount)
        w.u16(stageIndex)
        w.u16(stageCount)
        w.u32(contextLength)
        w.u32(maxSequences)
        w.u32(batchRows)
        w.u8(activationType.rawValue)
        w.string(nextEndpoint)
        w.byteArray(nextCurvePublicKey, .u8)
        w.byteArray(previousCurvePublicKey, .u8)
        for digest in tensorDigests.prefix(w.lengthPrefix(tensorDigests.count, .u16)) {
            w.string(digest.name)
            w.byteArray(digest.sha256, .u8)
        }
        w.u64(stageFileBytes)
        w.u32(plan)
        w.u32(keep?.fromPlan ?? 0)
        w.u32(keep?.rebuildStart ?? 0)
        w.u32(keep?.rebuildEnd ?? 0)
        w.bool(keep?.rebuildFromLog ?? false)
        w.bool(keep?.sendOn ?? false)
        let kept = keep?.sequences ?? []
        for s in kept.prefix(w.lengthPrefix(kept.count, .u16)) {
            w.u64(s.sequence)
            w.u32(s.length)
        }
    }

    static func read(from r: inout ByteReader) throws(WireError) -> Assign {
        let model = try ModelIdentity.read(from: &r, "assign.model")
        let layerStart = try r.u32("assign.layerStart")
        let layerEnd = try r.u32("assign.layerEnd")
        let layerCount = try r.u32("assign.layerCount")
        // A stage with no layers, or layers the model lacks, cannot be loaded; say so here
        // rather than deep inside the worker.
        guard layerStart < layerEnd, layerEnd <= layerCount else {
            throw .invalidValue(field: "assign.layerEnd",
                                reason: "layers \(layerStart) ..< \(layerEnd) are not a non-empty range within the model's \(layerCount)")
        }
        let stageIndex = try r.u16("assign.stageIndex")
        let stageCount = try r.u16("assign.stageCount")
        guard stageIndex < stageCount else {
            throw .invalidValue(field: "assign.stageIndex", reason: "stage \(stageIndex) of \(stageCount) does not exist")
        }
        let contextLength = try r.u32("assign.contextLength")
        let maxSequences = try r.u32("assign.maxSequences")
        let batchRows = try r.u32("assign.batchRows")
        guard batchRows >= 1 else { throw .invalidValue(field: "assign.batchRows", reason: "must be at least 1") }
        guard batchRows <= Wire.Limits.rows else { throw .limitExceeded(field: "assign.batchRows", value: Int(batchRows), limit: Wire.Limits.rows) }
        let type = try r.enumeration(ActivationType.self, "assign.activationType")
        let nextEndpoint = try r.string(limit: Wire.Limits.endpointBytes, "assign.nextEndpoint")
        let nextKey = try r.fixedBytes(.u8, sizes: [0, Wire.Limits.curveKeyBytes], "assign.nextCurvePublicKey")
        let previousKey = try r.fixedBytes(.u8, sizes: [0, Wire.Limits.curveKeyBytes], "assign.previousCurvePublicKey")
        // Each digest is at least its name's 2-byte length, a 1-byte length and 32 bytes.
        let digestCount = try r.count(.u16, limit: Wire.Limits.tensorDigests, minimumElementBytes: 35, "assign.tensorDigests.count")
        var digests: [TensorDigest] = []
        digests.reserveCapacity(digestCount)
        for i in 0 ..< digestCount {
            let name = try r.string(limit: Wire.Limits.tensorNameBytes, "assign.tensorDigests[\(i)].name")
            let sha = try r.fixedBytes(.u8, sizes: [Wire.Limits.sha256Bytes], "assign.tensorDigests[\(i)].sha256")
            digests.append(TensorDigest(name: name, sha256: sha))
        }
        let stageBytes = try r.u64("assign.stageFileBytes")
        let plan = try r.u32("assign.plan")
        let fromPlan = try r.u32("assign.keep.fromPlan")
        let rebuildStart = try r.u32("assign.keep.rebuildStart")
        let rebuildEnd = try r.u32("assign.keep.rebuildEnd")
        let fromLog = try r.bool("assign.keep.rebuildFromLog")
        let sendOn = try r.bool("assign.keep.sendOn")
        let keptCount = try r.count(.u16, limit: Wire.Limits.entries, minimumElementBytes: 12, "assign.keep.sequences.count")
        var kept: [KeptCaches.Sequence] = []
        kept.reserveCapacity(keptCount)
        for i in 0 ..< keptCount {
            let length = KeptCaches.Sequence(sequence: try r.u64("assign.keep.sequences[\(i)].sequence"),
                                             length: try r.u32("assign.keep.sequences[\(i)].length"))
            guard length.length <= contextLength else {
                throw .invalidValue(field: "assign.keep.sequences[\(i)].length", reason: "\(length.length) positions exceed the context of \(contextLength)")
            }
            kept.append(length)
        }
        var keep: KeptCaches?
        if fromPlan != 0 {
            guard fromPlan < plan else {
                throw .invalidValue(field: "assign.keep.fromPlan", reason: "plan \(fromPlan) is not earlier than the assignment's \(plan)")
            }
            guard rebuildStart >= rebuildEnd || (layerStart <= rebuildStart && rebuildEnd <= layerEnd) else {
                throw .invalidValue(field: "assign.keep.rebuildEnd",
                                    reason: "layers \(rebuildStart) ..< \(rebuildEnd) to rebuild are not the stage's (\(layerStart) ..< \(layerEnd))")
            }
            keep = KeptCaches(fromPlan: fromPlan, sequences: kept, rebuildStart: rebuildStart, rebuildEnd: rebuildEnd, rebuildFromLog: fromLog,
                              sendOn: sendOn)
        } else {
            guard rebuildStart == 0, rebuildEnd == 0, !fromLog, !sendOn, kept.isEmpty else {
                throw .invalidValue(field: "assign.keep.fromPlan", reason: "0 (nothing kept), but the rest of the kept caches is not empty")
            }
        }
        return Assign(model: model, layerStart: layerStart, layerEnd: layerEnd, layerCount: layerCount,
                      stageIndex: stageIndex, stageCount: stageCount, contextLength: contextLength,
                      maxSequences: maxSequences, batchRows: batchRows, activationType: type, nextEndpoint: nextEndpoint,
                      nextCurvePublicKey: nextKey, previousCurvePublicKey: previousKey, tensorDigests: digests, stageFileBytes: stageBytes, plan: plan, keep: keep)
    }
}
