import StrataWire
import Testing

/// Hostile lengths and counts are refused by their limit, or by the bytes actually there, before
/// anything is allocated: each frame here is a few bytes long and claims far more.
@Suite struct LimitTests {
    private let sha: [UInt8] = [0x20] + [UInt8](repeating: 1, count: 32)

    /// A hello body up to (not including) the cpuFeatures count.
    private var helloHead: [UInt8] { [0x02] + str("w") + str("1") + le64(0) + le16(1) }

    @Test func hostileCounts() {
        #expect(decodeError(frame(kind: 7, body: le32(1) + [1] + le16(0xFFFF)))
            == .limitExceeded(field: "release.count", value: 65535, limit: 4096))
        // Within the limit but not there: the count is checked against the bytes left.
        #expect(decodeError(frame(kind: 7, body: le32(1) + [1] + le16(4096) + le64(1)))
            == .truncated(field: "release.count", needed: 4096 * 8, available: 8))

        let chunkHead = le64(0) + le64(.max) + le32(0)
        #expect(decodeError(frame(kind: 4, body: chunkHead + le32(0xFFFF_FFFF)))
            == .limitExceeded(field: "weightChunk.data", value: 0xFFFF_FFFF, limit: 16 << 20))
        #expect(decodeError(frame(kind: 4, body: chunkHead + le32(16 << 20) + [1, 2]))
            == .truncated(field: "weightChunk.data", needed: 16 << 20, available: 2))

        let forwardHead = le64(1) + [0, 0, 0] + le32(8)
        #expect(decodeError(frame(kind: 5, body: forwardHead + le16(0xFFFF)))
            == .limitExceeded(field: "forward.entries.count", value: 65535, limit: 4096))
        #expect(decodeError(frame(kind: 5, body: forwardHead + le16(4096)))
            == .truncated(field: "forward.entries.count", needed: 4096 * 16, available: 0))
        #expect(decodeError(frame(kind: 6, body: forwardHead + le16(0) + le16(257)))
            == .limitExceeded(field: "result.stageNanos.count", value: 257, limit: 256))
        #expect(decodeError(frame(kind: 5, body: forwardHead + le16(0) + le16(0) + le32(0xFFFF_FFFF)))
            == .limitExceeded(field: "forward.payload", value: 0xFFFF_FFFF, limit: Wire.maxPayloadBytes))
        #expect(decodeError(frame(kind: 5, body: forwardHead + le16(0) + le16(0) + le32(4096)))
            == .truncated(field: "forward.payload", needed: 4096, available: 0))

        #expect(decodeError(frame(kind: 1, body: helloHead + [0xFF]))
            == .limitExceeded(field: "hello.cpuFeatures.count", value: 255, limit: 64))
        #expect(decodeError(frame(kind: 1, body: helloHead + [64]))
            == .truncated(field: "hello.cpuFeatures.count", needed: 128, available: 0))
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 65]))
            == .limitExceeded(field: "hello.models.count", value: 65, limit: 64))
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 64]))
            == .truncated(field: "hello.models.count", needed: 64 * 43, available: 0))
    }

    @Test func stringLimits() {
        let long = [UInt8](repeating: 0x61, count: 300)
        let error = decodeError(frame(kind: 1, body: [0x02] + le16(300) + long))
        #expect(error == .limitExceeded(field: "hello.peerID", value: 300, limit: 256))
        #expect(error?.description == "hello.peerID: 300 bytes exceeds the limit of 256")
        #expect(error?.reply == WireErrorMessage(code: .malformed, message: "hello.peerID: 300 bytes exceeds the limit of 256"))
        // A 65535-byte claim in a tiny frame.
        #expect(decodeError(frame(kind: 1, body: [0x02] + le16(0xFFFF)))
            == .limitExceeded(field: "hello.peerID", value: 65535, limit: 256))
        #expect(decodeError(frame(kind: 1, body: [0x02] + str("w") + le16(65)))
            == .limitExceeded(field: "hello.appVersion", value: 65, limit: 64))
        #expect(decodeError(frame(kind: 1, body: helloHead + [1] + le16(33)))
            == .limitExceeded(field: "hello.cpuFeatures[0]", value: 33, limit: 32))
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 1] + sha + le64(0) + le16(257)))
            == .limitExceeded(field: "hello.models[0].name", value: 257, limit: 256))
        #expect(decodeError(frame(kind: 255, body: le16(3) + le64(0) + le16(4097)))
            == .limitExceeded(field: "error.message", value: 4097, limit: 4096))
        let assignHead = sha + le64(0) + str("") + le32(0) + le32(1) + le32(1) + le16(0) + le16(1) + le32(0) + le32(0) + le32(1) + [0]
        #expect(decodeError(frame(kind: 2, body: assignHead + le16(257)))
            == .limitExceeded(field: "assign.nextEndpoint", value: 257, limit: 256))
        // Tensor digests: their count, each name, each digest's size.
        let digestsHead = assignHead + str("") + [0] + [0]
        #expect(decodeError(frame(kind: 2, body: digestsHead + le16(8193)))
            == .limitExceeded(field: "assign.tensorDigests.count", value: 8193, limit: 8192))
        #expect(decodeError(frame(kind: 2, body: digestsHead + le16(8192)))
            == .truncated(field: "assign.tensorDigests.count", needed: 8192 * 35, available: 0))
        #expect(decodeError(frame(kind: 2, body: digestsHead + le16(1) + le16(257) + [UInt8](repeating: 0x61, count: 257 + 33)))
            == .limitExceeded(field: "assign.tensorDigests[0].name", value: 257, limit: 256))
        #expect(decodeError(frame(kind: 2, body: digestsHead + le16(1) + str("w") + [16] + [UInt8](repeating: 0, count: 16 + 17)))
            == .invalidValue(field: "assign.tensorDigests[0].sha256", reason: "16 bytes, must be 32"))
    }

    @Test func exactSizes() {
        // Keys are absent or 32 bytes; digests exactly 32.
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 0, 31] + [UInt8](repeating: 0, count: 31)))
            == .invalidValue(field: "hello.curvePublicKey", reason: "31 bytes, must be 0 or 32"))
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 1, 31] + [UInt8](repeating: 0, count: 31 + 8 + 2 + 1)))
            == .invalidValue(field: "hello.models[0].sha256", reason: "31 bytes, must be 32"))
        #expect(decodeError(frame(kind: 1, body: helloHead + [0, 1, 0] + [UInt8](repeating: 0, count: 42)))
            == .invalidValue(field: "hello.models[0].sha256", reason: "0 bytes, must be 32"))
    }

    @Test func rowsAndDim() {
        let head = le64(1) + [0, 0, 0]
        let twoBigEntries = le16(2) + le64(1) + le32(0) + le32(40000) + le64(2) + le32(0) + le32(40000)
        let error = decodeError(frame(kind: 5, body: head + le32(1) + twoBigEntries))
        #expect(error == .limitExceeded(field: "forward.rows", value: 80000, limit: 65536))
        #expect(error?.description == "forward.rows: 80000 rows exceeds the limit of 65536")
        #expect(decodeError(frame(kind: 5, body: head + le32(0)))
            == .invalidValue(field: "forward.dim", reason: "must be at least 1"))
        #expect(decodeError(frame(kind: 5, body: head + le32(65537)))
            == .limitExceeded(field: "forward.dim", value: 65537, limit: 65536))
        #expect(decodeError(frame(kind: 5, body: head + le32(0xFFFF_FFFF)))
            == .limitExceeded(field: "forward.dim", value: 0xFFFF_FFFF, limit: 65536))
        #expect(WireError.limitExceeded(field: "forward.entries.count", value: 5000, limit: 4096).description
            == "forward.entries.count: 5000 entries exceeds the limit of 4096")
        #expect(WireError.limitExceeded(field: "forward.dim", value: 65537, limit: 65536).description
            == "forward.dim: 65537 values exceeds the limit of 65536")
    }

    /// Rows × dim at their largest would be 16 GiB of f32; the payload limit refuses that before
    /// the size check could be fooled.
    @Test func largestShapeIsBoundedByThePayloadLimit() {
        let entries = le16(1) + le64(1) + le32(0) + le32(65536)
        let body = le64(1) + [0, 0, 0] + le32(65536) + entries + le16(0) + le32(UInt32(Wire.maxPayloadBytes + 1))
        #expect(decodeError(frame(kind: 5, body: body))
            == .limitExceeded(field: "forward.payload", value: Wire.maxPayloadBytes + 1, limit: Wire.maxPayloadBytes))
    }

    /// Over-limit messages still encode (a string longer than its prefix is cut to 65535 bytes,
    /// still over the limit), and the peer refuses them by name.
    @Test func overLimitMessagesAreRefusedByThePeer() {
        let hello = WireMessage.hello(Hello(role: .worker, peerID: String(repeating: "p", count: 70000), appVersion: "1"))
        #expect(decodeError(hello.encoded()) == .limitExceeded(field: "hello.peerID", value: 65535, limit: 256))
        let features = WireMessage.hello(Hello(role: .worker, peerID: "", appVersion: "", cpuFeatures: Array(repeating: "x", count: 300)))
        #expect(decodeError(features.encoded()) == .limitExceeded(field: "hello.cpuFeatures.count", value: 255, limit: 64))
        let release = WireMessage.release(Release([UInt64](repeating: 1, count: 70000)))
        #expect(decodeError(release.encoded()) == .limitExceeded(field: "release.count", value: 65535, limit: 4096))
    }

    /// An error's text is cut to 4096 bytes, at a character boundary, so the error always gets
    /// through.
    @Test func longErrorMessagesAreClipped() throws {
        let euros = String(repeating: "€", count: 2000)  // 3 bytes each
        guard case let .error(m) = try WireMessage.decode(WireMessage.error(WireErrorMessage(code: .internal, message: euros)).encoded())
        else { Issue.record("not an error"); return }
        #expect(m.message.utf8.count == 4095)
        #expect(m.message == String(repeating: "€", count: 1365))
        let ascii = String(repeating: "a", count: 5000)
        guard case let .error(n) = try WireMessage.decode(WireMessage.error(WireErrorMessage(code: .internal, message: ascii)).encoded())
        else { Issue.record("not an error"); return }
        #expect(n.message.utf8.count == 4096)
    }
}
