/// WeightChunk body: offset u64, totalBytes u64, crc32 u32, data (u32 length, at most 16 MiB).
extension WeightChunk {
    func write(to w: inout ByteWriter) {
        w.u64(offset)
        w.u64(totalBytes)
        w.u32(crc32)
        w.byteArray(data, .u32)
    }

    static func read(from r: inout ByteReader) throws(WireError) -> WeightChunk {
        let offset = try r.u64("weightChunk.offset")
        let totalBytes = try r.u64("weightChunk.totalBytes")
        let crc = try r.u32("weightChunk.crc32")
        let data = try r.rawBytes(.u32, limit: Wire.Limits.chunkBytes, "weightChunk.data")
        // Place and checksum are checked on the frame's bytes, before the copy.
        let (end, overflow) = offset.addingReportingOverflow(UInt64(data.count))
        guard !overflow, end <= totalBytes else {
            throw .invalidValue(field: "weightChunk.data",
                                reason: "\(data.count) bytes at offset \(offset) run past the stage file's \(totalBytes) bytes")
        }
        let actual = CRC32.checksum(data)
        guard actual == crc else { throw .checksumMismatch(expected: crc, got: actual) }
        var chunk = WeightChunk(offset: offset, totalBytes: totalBytes, data: [])
        chunk.data = Array(data)
        chunk.crc32 = crc
        return chunk
    }
}
