/// Hello body: role u8, peerID string, appVersion string, memoryBytes u64, threads u16,
/// cpuFeatures (u8 count, strings), models (u8 count, identities), curvePublicKey (u8 length,
/// 0 or 32 bytes), endpoint string.
extension Hello {
    func write(to w: inout ByteWriter) {
        w.u8(role.rawValue)
        w.string(peerID)
        w.string(appVersion)
        w.u64(memoryBytes)
        w.u16(threads)
        for feature in cpuFeatures.prefix(w.lengthPrefix(cpuFeatures.count, .u8)) { w.string(feature) }
        for model in models.prefix(w.lengthPrefix(models.count, .u8)) { model.write(to: &w) }
        w.byteArray(curvePublicKey, .u8)
        w.string(endpoint)
    }

    static func read(from r: inout ByteReader) throws(WireError) -> Hello {
        let role = try r.enumeration(Role.self, "hello.role")
        let peerID = try r.string(limit: Wire.Limits.peerIDBytes, "hello.peerID")
        let appVersion = try r.string(limit: Wire.Limits.appVersionBytes, "hello.appVersion")
        let memoryBytes = try r.u64("hello.memoryBytes")
        let threads = try r.u16("hello.threads")

        // Each feature is at least its 2-byte length.
        let featureCount = try r.count(.u8, limit: Wire.Limits.cpuFeatures, minimumElementBytes: 2, "hello.cpuFeatures.count")
        var features: [String] = []
        features.reserveCapacity(featureCount)
        for i in 0 ..< featureCount {
            features.append(try r.string(limit: Wire.Limits.cpuFeatureBytes, "hello.cpuFeatures[\(i)]"))
        }

        let modelCount = try r.count(.u8, limit: Wire.Limits.models, minimumElementBytes: ModelIdentity.minimumBytes, "hello.models.count")
        var models: [ModelIdentity] = []
        models.reserveCapacity(modelCount)
        for i in 0 ..< modelCount { models.append(try ModelIdentity.read(from: &r, "hello.models[\(i)]")) }

        let key = try r.fixedBytes(.u8, sizes: [0, Wire.Limits.curveKeyBytes], "hello.curvePublicKey")
        let endpoint = try r.string(limit: Wire.Limits.endpointBytes, "hello.endpoint")
        return Hello(role: role, peerID: peerID, appVersion: appVersion, memoryBytes: memoryBytes, threads: threads,
                     cpuFeatures: features, models: models, curvePublicKey: key, endpoint: endpoint)
    }
}

/// ModelIdentity: sha256 (u8 length, exactly 32 bytes), byteCount u64, name string.
extension ModelIdentity {
    /// Length prefix and digest, byte count, empty name's length.
    static let minimumBytes = 1 + Wire.Limits.sha256Bytes + 8 + 2

    func write(to w: inout ByteWriter) {
        w.byteArray(sha256, .u8)
        w.u64(byteCount)
        w.string(name)
    }

    static func read(from r: inout ByteReader, _ path: @autoclosure () -> String) throws(WireError) -> ModelIdentity {
        let sha = try r.fixedBytes(.u8, sizes: [Wire.Limits.sha256Bytes], path() + ".sha256")
        let byteCount = try r.u64(path() + ".byteCount")
        let name = try r.string(limit: Wire.Limits.modelNameBytes, path() + ".name")
        return ModelIdentity(sha256: sha, byteCount: byteCount, name: name)
    }
}
