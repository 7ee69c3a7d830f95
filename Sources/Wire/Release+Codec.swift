/// Release body: u16 count (at most 4096), then each sequence as u64.
enum ReleaseBody {
    static func write(_ sequences: [UInt64], to w: inout ByteWriter) {
        for sequence in sequences.prefix(w.lengthPrefix(sequences.count, .u16)) { w.u64(sequence) }
    }

    static func read(from r: inout ByteReader) throws(WireError) -> [UInt64] {
        let n = try r.count(.u16, limit: Wire.Limits.releaseSequences, minimumElementBytes: 8, "release.count")
        var sequences: [UInt64] = []
        sequences.reserveCapacity(n)
        for i in 0 ..< n { sequences.append(try r.u64("release[\(i)]")) }
        return sequences
    }
}
