import StrataWire
import Testing

/// Checks beyond lengths: values that must make sense together, enums, bools, UTF-8, checksums.
@Suite struct ValidationTests {
    @Test func checksumMismatch() throws {
        let chunk = WeightChunk(offset: 0, totalBytes: 100, data: Array("123456789".utf8))
        var f = WireMessage.weightChunk(chunk).encoded()
        f[f.count - 1] ^= 1  // the last data byte
        var changed = chunk.data
        changed[changed.count - 1] ^= 1
        let error = decodeError(f)
        #expect(error == .checksumMismatch(expected: 0xCBF4_3926, got: CRC32.checksum(changed)))
        #expect(error?.reply.code == .malformed)
        #expect(WireError.checksumMismatch(expected: 0xCBF4_3926, got: 0x12).description
            == "weightChunk.data: CRC-32 is 0x00000012 but the chunk says 0xCBF43926")

        var wrongCRC = WireMessage.weightChunk(chunk).encoded()
        wrongCRC[28] ^= 0x80  // crc32 field at body offset 16
        #expect(decodeError(wrongCRC) == .checksumMismatch(expected: 0xCBF4_3926 ^ 0x80, got: 0xCBF4_3926))
    }

    /// Kept caches come from an earlier plan and rebuild only the stage's own layers; with
    /// nothing kept, nothing else of them may be set.
    @Test func keptCachesAreChecked() {
        func assign(_ keep: KeptCaches?, plan: UInt32 = 5) -> [UInt8] {
            WireMessage.assign(Assign(model: ModelIdentity(sha256: [UInt8](repeating: 1, count: 32), byteCount: 1, name: "m"),
                                      layerStart: 10, layerEnd: 20, layerCount: 30, stageIndex: 0, stageCount: 2, contextLength: 64,
                                      maxSequences: 4, activationType: .f32, nextEndpoint: "", plan: plan, keep: keep)).encoded()
        }
        let one = [KeptCaches.Sequence(sequence: 1, length: 12)]
        #expect(decodeError(assign(KeptCaches(fromPlan: 4, sequences: one, rebuildStart: 15, rebuildEnd: 20, rebuildFromLog: true))) == nil)
        #expect(decodeError(assign(KeptCaches(fromPlan: 5, sequences: one)))
            == .invalidValue(field: "assign.keep.fromPlan", reason: "plan 5 is not earlier than the assignment's 5"))
        #expect(decodeError(assign(KeptCaches(fromPlan: 4, sequences: one, rebuildStart: 5, rebuildEnd: 12)))
            == .invalidValue(field: "assign.keep.rebuildEnd", reason: "layers 5 ..< 12 to rebuild are not the stage's (10 ..< 20)"))
        #expect(decodeError(assign(KeptCaches(fromPlan: 4, sequences: [.init(sequence: 1, length: 65)])))
            == .invalidValue(field: "assign.keep.sequences[0].length", reason: "65 positions exceed the context of 64"))
        var nothingKept = assign(nil)
        nothingKept[nothingKept.count - 3] = 1  // sendOn, with fromPlan 0
        #expect(decodeError(nothingKept)
            == .invalidValue(field: "assign.keep.fromPlan", reason: "0 (nothing kept), but the rest of the kept caches is not empty"))
    }

    @Test func chunkMustLieInsideTheFile() {
        let data: [UInt8] = [1, 2, 3, 4]
        let body = { (offset: UInt64, total: UInt64) in le64(offset) + le64(total) + le32(CRC32.checksum(data)) + le32(4) + data }
        #expect(decodeError(frame(kind: 4, body: body(0, 4))) == nil)
        #expect(decodeError(frame(kind: 4, body: body(96, 100))) == nil)
        #expect(decodeError(frame(kind: 4, body: body(97, 100)))
            == .invalidValue(field: "weightChunk.data", reason: "4 bytes at offset 97 run past the stage file's 100 bytes"))
        // offset + count overflows UInt64.
        if case .invalidValue(field: "weightChunk.data", _)? = decodeError(frame(kind: 4, body: body(.max - 1, .max))) {} else {
            Issue.record("overflowing offset accepted")
        }
    }

    @Test func payloadSizeMustMatchRowsTimesDim() {
        // Two rows of 2 f16 values take 8 bytes.
        let head = le64(1) + [0, 0, 1] + le32(2) + le16(1) + le64(1) + le32(0) + le32(2) + le16(0)
        #expect(decodeError(frame(kind: 5, body: head + le32(8) + [UInt8](repeating: 0, count: 8))) == nil)
        let error = decodeError(frame(kind: 5, body: head + le32(6) + [UInt8](repeating: 0, count: 6)))
        #expect(error == .invalidValue(field: "forward.payload", reason: "6 bytes, but 2 rows of 2 f16 values take 8"))

        // Last rows only: one row per entry.
        let last = le64(1) + [1, 0, 0] + le32(2) + le16(1) + le64(1) + le32(0) + le32(5) + le16(0)
        #expect(decodeError(frame(kind: 6, body: last + le32(8) + [UInt8](repeating: 0, count: 8))) == nil)
        #expect(decodeError(frame(kind: 6, body: last + le32(40) + [UInt8](repeating: 0, count: 40)))
            == .invalidValue(field: "result.payload", reason: "40 bytes, but 1 rows of 2 f32 values take 8"))

        // The payload in a message must match too when built by hand.
        let bad = WireMessage.forward(Activations(requestID: 1, lastRowsOnly: false, type: .f32, dim: 4,
                                                  entries: [.init(sequence: 1, position: 0, tokenCount: 1)], payload: [0, 0]))
        #expect(decodeError(bad.encoded()) == .invalidValue(field: "forward.payload", reason: "2 bytes, but 1 rows of 4 f32 values take 16"))
    }

    @Test func q8NeedsDimMultipleOf32() {
        let head = le64(1) + [0, 0, 3]
        #expect(decodeError(frame(kind: 5, body: head + le32(48)))
            == .invalidValue(field: "forward.dim", reason: "48 is not a multiple of 32, which q8_0 needs"))
        let ok = head + le32(64) + le16(1) + le64(1) + le32(0) + le32(1) + le16(0) + le32(68) + [UInt8](repeating: 0, count: 68)
        #expect(decodeError(frame(kind: 5, body: ok)) == nil)
    }

    @Test func assignRanges() {
        func assign(_ start: UInt32, _ end: UInt32, _ count: UInt32, _ index: UInt16, _ stages: UInt16) -> WireError? {
            decodeError(WireMessage.assign(Assign(model: Samples.model, layerStart: start, layerEnd: end, layerCount: count,
                                                  stageIndex: index, stageCount: stages, contextLength: 1, maxSequences: 1,
                                                  activationType: .f32, nextEndpoint: "")).encoded())
        }
        #expect(assign(0, 30, 30, 0, 1) == nil)
        #expect(assign(29, 30, 30, 2, 3) == nil)
        #expect(assign(5, 5, 30, 0, 1) == .invalidValue(field: "assign.layerEnd",
                                                         reason: "layers 5 ..< 5 are not a non-empty range within the model's 30"))
        #expect(assign(6, 5, 30, 0, 1) != nil)
        #expect(assign(0, 31, 30, 0, 1) != nil)
        #expect(assign(0, 1, 30, 1, 1) == .invalidValue(field: "assign.stageIndex", reason: "stage 1 of 1 does not exist"))
        #expect(assign(0, 1, 30, 0, 0) != nil)
    }

    /// A plan's forwards hold at least one row, and no more than a forward may.
    @Test func assignBatchRows() {
        func assign(_ rows: UInt32) -> WireError? {
            decodeError(WireMessage.assign(Assign(model: Samples.model, layerStart: 0, layerEnd: 1, layerCount: 1, stageIndex: 0, stageCount: 1,
                                                  contextLength: 1, maxSequences: 1, batchRows: rows, activationType: .f32, nextEndpoint: "")).encoded())
        }
        #expect(assign(1) == nil && assign(65536) == nil)
        #expect(assign(0) == .invalidValue(field: "assign.batchRows", reason: "must be at least 1"))
        #expect(assign(65537) == .limitExceeded(field: "assign.batchRows", value: 65537, limit: 65536))
    }

    @Test func enumsAndBools() {
        #expect(decodeError(frame(kind: 1, body: [9])) == .invalidValue(field: "hello.role", reason: "unknown value 9"))
        #expect(decodeError(frame(kind: 3, body: [3] + [UInt8](repeating: 0, count: 28)))
            == .invalidValue(field: "loadReport.status", reason: "unknown value 3"))
        #expect(decodeError(frame(kind: 5, body: le64(1) + [2]))
            == .invalidValue(field: "forward.lastRowsOnly", reason: "2 is not a bool (0 or 1)"))
        #expect(decodeError(frame(kind: 5, body: le64(1) + [0, 2]))
            == .invalidValue(field: "forward.rebuild", reason: "2 is not a bool (0 or 1)"))
        #expect(decodeError(frame(kind: 5, body: le64(1) + [0, 0, 4]))
            == .invalidValue(field: "forward.type", reason: "unknown value 4"))
        // A result rebuilds nothing.
        #expect(decodeError(frame(kind: 6, body: le64(1) + [0, 1]))
            == .invalidValue(field: "result.rebuild", reason: "a result rebuilds nothing"))
    }

    @Test func invalidUTF8() {
        for bad: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0x80]] {
            let error = decodeError(frame(kind: 1, body: [0x02] + le16(UInt16(bad.count)) + bad))
            #expect(error == .invalidValue(field: "hello.peerID", reason: "invalid UTF-8"))
        }
        // A NUL is valid UTF-8 and survives.
        let hello = WireMessage.hello(Hello(role: .worker, peerID: "a\u{0}b", appVersion: "ü"))
        #expect(decodeError(hello.encoded()) == nil)
    }
}
