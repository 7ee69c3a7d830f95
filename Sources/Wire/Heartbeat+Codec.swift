/// Heartbeat body: nonce u64, sequences u32, kvCacheBytes u64, residentBytes u64.
extension Heartbeat {
    func write(to w: inout ByteWriter) {
        w.u64(nonce)
        w.u32(sequences)
        w.u64(kvCacheBytes)
        w.u64(residentBytes)
    }

    static func read(from r: inout ByteReader) throws(WireError) -> Heartbeat {
        Heartbeat(nonce: try r.u64("heartbeat.nonce"), sequences: try r.u32("heartbeat.sequences"),
                  kvCacheBytes: try r.u64("heartbeat.kvCacheBytes"), residentBytes: try r.u64("heartbeat.residentBytes"))
    }
}
