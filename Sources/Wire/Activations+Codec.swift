/// Activations body, shared by `.forward` and `.result`: requestID u64, lastRowsOnly bool,
/// rebuild bool (false in a result), type u8, dim u32, entries (u16 count; each sequence u64, position u32, tokenCount u32),
/// stageNanos (u16 count; each u64), payload (u32 length, rows × dim values as `type`).
extension Activations {
    /// Sequence, position, token count.
    static let entryBytes = 16

    func write(to w: inout ByteWriter) {
        w.u64(requestID)
        w.bool(lastRowsOnly)
        w.bool(rebuild)
        w.u8(type.rawValue)
        w.u32(dim)
        for entry in entries.prefix(w.lengthPrefix(entries.count, .u16)) {
            w.u64(entry.sequence)
            w.u32(entry.position)
            w.u32(entry.tokenCount)
        }
        for nanos in stageNanos.prefix(w.lengthPrefix(stageNanos.count, .u16)) { w.u64(nanos) }
        w.byteArray(payload, .u32)
    }

    /// `kind` is "forward" or "result", for field names. A result with `lastRowsOnly` holds one
    /// row per entry; a forward always holds every token's row (`lastRowsOnly` there asks the
    /// last stage to send back only the last rows).
    static func read(from r: inout ByteReader, _ kind: String, isResult: Bool) throws(WireError) -> Activations {
        let requestID = try r.u64(kind + ".requestID")
        let lastRowsOnly = try r.bool(kind + ".lastRowsOnly")
        let rebuild = try r.bool(kind + ".rebuild")
        guard !(rebuild && isResult) else { throw .invalidValue(field: kind + ".rebuild", reason: "a result rebuilds nothing") }
        let type = try r.enumeration(ActivationType.self, kind + ".type")
        let dim = Int(try r.u32(kind + ".dim"))
        guard dim >= 1 else { throw .invalidValue(field: kind + ".dim", reason: "must be at least 1") }
        guard dim <= Wire.Limits.dim else { throw .limitExceeded(field: kind + ".dim", value: dim, limit: Wire.Limits.dim) }
        guard ActivationCodec.byteCount(values: dim, type: type) != nil else {
            throw .invalidValue(field: kind + ".dim", reason: "\(dim) is not a multiple of 32, which q8_0 needs")
        }

        let entryCount = try r.count(.u16, limit: Wire.Limits.entries, minimumElementBytes: entryBytes, kind + ".entries.count")
        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        var tokens = 0
        for i in 0 ..< entryCount {
            let entry = Entry(sequence: try r.u64("\(kind).entries[\(i)].sequence"),
                              position: try r.u32("\(kind).entries[\(i)].position"),
                              tokenCount: try r.u32("\(kind).entries[\(i)].tokenCount"))
            tokens += Int(entry.tokenCount)  // at most 4096 × (2^32 - 1): no overflow
            entries.append(entry)
        }
        guard tokens <= Wire.Limits.rows else {
            throw .limitExceeded(field: kind + ".rows", value: tokens, limit: Wire.Limits.rows)
        }

        let stageCount = try r.count(.u16, limit: Wire.Limits.stages, minimumElementBytes: 8, kind + ".stageNanos.count")
        var stageNanos: [UInt64] = []
        stageNanos.reserveCapacity(stageCount)
        for i in 0 ..< stageCount { stageNanos.append(try r.u64("\(kind).stageNanos[\(i)]")) }

        // The payload's size follows from the fields before it; check it before copying.
        let payload = try r.rawBytes(.u32, limit: Wire.maxPayloadBytes, kind + ".payload")
        let rows = isResult && lastRowsOnly ? entryCount : tokens
        let expected = ActivationCodec.byteCount(values: rows * dim, type: type)!  // dim checked above
        guard payload.count == expected else {
            throw .invalidValue(field: kind + ".payload",
                                reason: "\(payload.count) bytes, but \(rows) rows of \(dim) \(type) values take \(expected)")
        }
        return Activations(requestID: requestID, lastRowsOnly: lastRowsOnly, rebuild: rebuild, type: type, dim: UInt32(dim),
                           entries: entries, stageNanos: stageNanos, payload: Array(payload))
    }
}
