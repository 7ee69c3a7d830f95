/// LoadReport body: status u8, weightBytes u64, kvCacheBytes u64, residentBytes u64,
/// loadMilliseconds u32, receivedBytes u64, kvPages u32, kvPageRows u32, plan u32.
extension LoadReport {
    func write(to w: inout ByteWriter) {
        w.u8(status.rawValue)
        w.u64(weightBytes)
        w.u64(kvCacheBytes)
        w.u64(residentBytes)
        w.u32(loadMilliseconds)
        w.u64(receivedBytes)
        w.u32(kvPages)
        w.u32(kvPageRows)
        w.u32(plan)
    }

    static func read(from r: inout ByteReader) throws(WireError) -> LoadReport {
        LoadReport(status: try r.enumeration(Status.self, "loadReport.status"),
                   weightBytes: try r.u64("loadReport.weightBytes"),
                   kvCacheBytes: try r.u64("loadReport.kvCacheBytes"),
                   residentBytes: try r.u64("loadReport.residentBytes"),
                   loadMilliseconds: try r.u32("loadReport.loadMilliseconds"),
                   receivedBytes: try r.u64("loadReport.receivedBytes"),
                   kvPages: try r.u32("loadReport.kvPages"),
                   kvPageRows: try r.u32("loadReport.kvPageRows"),
                   plan: try r.u32("loadReport.plan"))
    }
}
