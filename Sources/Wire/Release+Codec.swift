/// Release body: plan u32, passOn bool, then the sequences: u16 count (at most 4096), each a u64.
extension Release {
    func write(to w: inout ByteWriter) {
        w.u32(plan)
        w.bool(passOn)
        for sequence in sequences.prefix(w.lengthPrefix(sequences.count, .u16)) { w.u64(sequence) }
    }

    static func read(from r: inout ByteReader) throws(WireError) -> Release {
        let plan = try r.u32("release.plan")
        let passOn = try r.bool("release.passOn")
        let n = try r.count(.u16, limit: Wire.Limits.releaseSequences, minimumElementBytes: 8, "release.count")
        var sequences: [UInt64] = []
        sequences.reserveCapacity(n)
        for i in 0 ..< n { sequences.append(try r.u64("release[\(i)]")) }
        return Release(sequences, plan: plan, passOn: passOn)
    }
}
