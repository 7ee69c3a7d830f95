import StrataWire
import Testing

/// One small instance of each kind against bytes written by hand from docs/wire-protocol.md:
/// any change to the layout fails here. The helpers only spell out bytes; nothing here calls
/// the encoder to produce an expectation.
@Suite struct GoldenBytesTests {
    /// The header for protocol version 5: magic, version, kind, flags 0, body length.
    private func header(_ kind: UInt8, _ bodyLength: UInt8) -> [UInt8] {
        [0x53, 0x54, 0x52, 0x41, 0x06, 0x00, kind, 0x00, bodyLength, 0x00, 0x00, 0x00]
    }

    private func check(_ message: WireMessage, _ expected: [UInt8]) throws {
        #expect(message.encoded() == expected)
        #expect(try WireMessage.decode(expected) == message)
    }

    @Test func hello() throws {
        let message = WireMessage.hello(Hello(
            role: .worker, peerID: "w1", appVersion: "0.1", memoryBytes: 0x0102, threads: 4, cpuFeatures: ["avx2"],
            models: [ModelIdentity(sha256: [UInt8](repeating: 0xAB, count: 32), byteCount: 1000, name: "m")], endpoint: "t"))
        let expected: [UInt8] = header(1, 76)
            + [0x02]                                            // role: worker
            + [0x02, 0x00, 0x77, 0x31]                          // peerID "w1"
            + [0x03, 0x00, 0x30, 0x2E, 0x31]                    // appVersion "0.1"
            + [0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // memoryBytes 0x0102
            + [0x04, 0x00]                                      // threads 4
            + [0x01, 0x04, 0x00, 0x61, 0x76, 0x78, 0x32]        // cpuFeatures: 1, "avx2"
            + [0x01]                                            // models: 1
            + [0x20] + [UInt8](repeating: 0xAB, count: 32)      //   sha256
            + [0xE8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  //   byteCount 1000
            + [0x01, 0x00, 0x6D]                                //   name "m"
            + [0x00]                                            // curvePublicKey: none
            + [0x01, 0x00, 0x74]                                // endpoint "t"
        try check(message, expected)
    }

    @Test func assign() throws {
        let message = WireMessage.assign(Assign(
            model: ModelIdentity(sha256: [UInt8](repeating: 0x11, count: 32), byteCount: 5, name: "a"),
            layerStart: 2, layerEnd: 4, layerCount: 30, stageIndex: 1, stageCount: 3, contextLength: 2048,
            maxSequences: 8, batchRows: 520, activationType: .f16, nextEndpoint: "tcp://h:1", previousCurvePublicKey: [UInt8](repeating: 0x33, count: 32),
            tensorDigests: [TensorDigest(name: "w", sha256: [UInt8](repeating: 0x22, count: 32))], stageFileBytes: 0x0102, plan: 7,
            keep: KeptCaches(fromPlan: 6, sequences: [.init(sequence: 9, length: 40)], rebuildStart: 2, rebuildEnd: 3, rebuildFromLog: true,
                             sendOn: true)))
        let expected: [UInt8] = header(2, 196)
            + [0x20] + [UInt8](repeating: 0x11, count: 32)      // model.sha256
            + [0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // model.byteCount 5
            + [0x01, 0x00, 0x61]                                // model.name "a"
            + [0x02, 0x00, 0x00, 0x00]                          // layerStart 2
            + [0x04, 0x00, 0x00, 0x00]                          // layerEnd 4
            + [0x1E, 0x00, 0x00, 0x00]                          // layerCount 30
            + [0x01, 0x00, 0x03, 0x00]                          // stageIndex 1, stageCount 3
            + [0x00, 0x08, 0x00, 0x00]                          // contextLength 2048
            + [0x08, 0x00, 0x00, 0x00]                          // maxSequences 8
            + [0x08, 0x02, 0x00, 0x00]                          // batchRows 520
            + [0x01]                                            // activationType f16
            + [0x09, 0x00, 0x74, 0x63, 0x70, 0x3A, 0x2F, 0x2F, 0x68, 0x3A, 0x31]  // "tcp://h:1"
            + [0x00]                                            // nextCurvePublicKey: none
            + [0x20] + [UInt8](repeating: 0x33, count: 32)      // previousCurvePublicKey
            + [0x01, 0x00]                                      // tensorDigests: 1
            + [0x01, 0x00, 0x77]                                //   name "w"
            + [0x20] + [UInt8](repeating: 0x22, count: 32)      //   sha256
            + [0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // stageFileBytes 0x0102
            + [0x07, 0x00, 0x00, 0x00]                          // plan 7
            + [0x06, 0x00, 0x00, 0x00]                          // keep.fromPlan 6
            + [0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]  // keep.rebuildStart 2, rebuildEnd 3
            + [0x01]                                            // keep.rebuildFromLog true
            + [0x01]                                            // keep.sendOn true
            + [0x01, 0x00]                                      // keep.sequences: 1
            + [0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  //   sequence 9
            + [0x28, 0x00, 0x00, 0x00]                          //   length 40
        try check(message, expected)
    }

    @Test func loadReport() throws {
        let message = WireMessage.loadReport(LoadReport(status: .needWeights, weightBytes: 0x10, kvCacheBytes: 0x20,
                                                        residentBytes: 0x30, loadMilliseconds: 0x1234, receivedBytes: 0x40,
                                                        kvPages: 0x50, kvPageRows: 16, plan: 3))
        let expected: [UInt8] = header(3, 49)
            + [0x01]                                            // status: needWeights
            + [0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // weightBytes
            + [0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // kvCacheBytes
            + [0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // residentBytes
            + [0x34, 0x12, 0x00, 0x00]                          // loadMilliseconds
            + [0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // receivedBytes
            + [0x50, 0x00, 0x00, 0x00]                          // kvPages
            + [0x10, 0x00, 0x00, 0x00]                          // kvPageRows
            + [0x03, 0x00, 0x00, 0x00]                          // plan 3
        try check(message, expected)
    }

    @Test func weightChunk() throws {
        let message = WireMessage.weightChunk(WeightChunk(offset: 9, totalBytes: 18, data: Array("123456789".utf8)))
        let expected: [UInt8] = header(4, 33)
            + [0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // offset 9
            + [0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // totalBytes 18
            + [0x26, 0x39, 0xF4, 0xCB]                          // crc32 0xCBF43926
            + [0x09, 0x00, 0x00, 0x00]                          // data: 9 bytes
            + [0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39]
        try check(message, expected)
    }

    @Test func forward() throws {
        let message = WireMessage.forward(Activations(
            requestID: 7, lastRowsOnly: false, type: .f16, dim: 2,
            entries: [.init(sequence: 3, position: 5, tokenCount: 1)], stageNanos: [100],
            payload: [0x00, 0x3C, 0x00, 0xC0]))
        let expected: [UInt8] = header(5, 51)
            + [0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // requestID 7
            + [0x00]                                            // lastRowsOnly false
            + [0x00]                                            // rebuild false
            + [0x01]                                            // type f16
            + [0x02, 0x00, 0x00, 0x00]                          // dim 2
            + [0x01, 0x00]                                      // entries: 1
            + [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  //   sequence 3
            + [0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]  //   position 5, tokenCount 1
            + [0x01, 0x00]                                      // stageNanos: 1
            + [0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  //   100
            + [0x04, 0x00, 0x00, 0x00]                          // payload: 4 bytes
            + [0x00, 0x3C, 0x00, 0xC0]                          //   1.0, -2.0 as f16
        try check(message, expected)
        #expect(try ActivationCodec.decode([0x00, 0x3C, 0x00, 0xC0], as: .f16, count: 2) == [1, -2])
    }

    @Test func result() throws {
        // lastRowsOnly: one row per entry, whatever its token count.
        let message = WireMessage.result(Activations(
            requestID: 7, lastRowsOnly: true, type: .f32, dim: 1,
            entries: [.init(sequence: 3, position: 5, tokenCount: 4)], payload: [0x00, 0x00, 0x80, 0x3F]))
        let expected: [UInt8] = header(6, 43)
            + [0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // requestID 7
            + [0x01]                                            // lastRowsOnly true
            + [0x00]                                            // rebuild false
            + [0x00]                                            // type f32
            + [0x01, 0x00, 0x00, 0x00]                          // dim 1
            + [0x01, 0x00]                                      // entries: 1
            + [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  //   sequence 3
            + [0x05, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00]  //   position 5, tokenCount 4
            + [0x00, 0x00]                                      // stageNanos: none
            + [0x04, 0x00, 0x00, 0x00]                          // payload: 4 bytes
            + [0x00, 0x00, 0x80, 0x3F]                          //   1.0 as f32
        try check(message, expected)
    }

    @Test func release() throws {
        let expected: [UInt8] = header(7, 23)
            + [0x03, 0x01, 0x00, 0x00]                          // plan 259
            + [0x01]                                            // passOn
            + [0x02, 0x00]                                      // 2 sequences
            + [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
            + [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]
        try check(.release(Release([1, 0x0102_0304_0506_0708], plan: 259, passOn: true)), expected)
    }

    @Test func heartbeat() throws {
        let expected: [UInt8] = header(8, 28)
            + [0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // nonce
            + [0x02, 0x00, 0x00, 0x00]                          // sequences
            + [0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // kvCacheBytes 256
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // residentBytes 0
        try check(.heartbeat(Heartbeat(nonce: 0xFF, sequences: 2, kvCacheBytes: 0x100)), expected)
    }

    @Test func shutdown() throws {
        try check(.shutdown, header(9, 0))
    }

    @Test func error() throws {
        let expected: [UInt8] = header(255, 16)
            + [0x0A, 0x00]                                      // code: busy (10)
            + [0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // requestID 42
            + [0x04, 0x00, 0x66, 0x75, 0x6C, 0x6C]              // "full"
        try check(.error(WireErrorMessage(code: .busy, requestID: 42, message: "full")), expected)
    }

    /// Every kind has its golden test above; this keeps the kind bytes themselves pinned.
    @Test func kindBytes() {
        let expected: [MessageKind: UInt8] = [.hello: 1, .assign: 2, .loadReport: 3, .weightChunk: 4, .forward: 5,
                                             .result: 6, .release: 7, .heartbeat: 8, .shutdown: 9, .error: 255]
        #expect(MessageKind.allCases.count == expected.count)
        for kind in MessageKind.allCases { #expect(kind.rawValue == expected[kind]) }
    }

    @Test func constants() {
        #expect(Wire.magic == [0x53, 0x54, 0x52, 0x41])
        #expect(Wire.protocolVersion == 6)
        #expect(Wire.headerBytes == 12)
        #expect(Wire.maxFrameBytes == 16_908_288)
        #expect(Wire.maxPayloadBytes == 16_777_216)
    }
}
