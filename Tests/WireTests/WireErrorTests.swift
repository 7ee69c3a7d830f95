import StrataWire
import Testing

/// What a peer's operator reads: every description, and the reply each error becomes.
@Suite struct WireErrorTests {
    @Test func descriptionsAndReplies() {
        let cases: [(WireError, String, WireErrorMessage.Code)] = [
            (.truncated(field: "heartbeat.nonce", needed: 8, available: 3),
             "heartbeat.nonce: truncated, needs 8 bytes but only 3 remain", .malformed),
            (.badMagic, "not a Strata frame: it does not start with the magic \"STRA\"", .malformed),
            (.unsupportedVersion(7), "protocol version 7 is not supported; this peer speaks 6", .unsupportedVersion),
            (.unknownKind(42), "unknown message kind 42", .unknownKind),
            (.frameLength(declared: 40, actual: 41), "the header declares a frame of 40 bytes but the frame is 41 bytes", .malformed),
            (.limitExceeded(field: "hello.peerID", value: 300, limit: 256), "hello.peerID: 300 bytes exceeds the limit of 256", .malformed),
            (.limitExceeded(field: "release.count", value: 5000, limit: 4096), "release.count: 5000 entries exceeds the limit of 4096", .malformed),
            (.invalidValue(field: "hello.role", reason: "unknown value 9"), "hello.role: unknown value 9", .malformed),
            (.checksumMismatch(expected: 1, got: 0xABCD_EF01),
             "weightChunk.data: CRC-32 is 0xABCDEF01 but the chunk says 0x00000001", .malformed),
            (.trailingBytes(1), "1 unexpected bytes after the end of the message", .malformed),
        ]
        for (error, description, code) in cases {
            #expect(error.description == description)
            #expect(error.reply == WireErrorMessage(code: code, requestID: 0, message: description))
        }
    }

    /// A reply always fits in an error frame and decodes.
    @Test func repliesAreDecodable() throws {
        let long = WireError.invalidValue(field: String(repeating: "f", count: 5000), reason: "x")
        let decoded = try WireMessage.decode(WireMessage.error(long.reply).encoded())
        guard case let .error(m) = decoded else { Issue.record("not an error frame"); return }
        #expect(m.code == .malformed && m.message.utf8.count == 4096)
    }

    /// The largest chunk is accepted; one byte more is refused by its length, before its
    /// checksum is computed.
    @Test func chunkSizeLimit() throws {
        let data = [UInt8](repeating: 0xA5, count: 16 << 20)
        let largest = WireMessage.weightChunk(WeightChunk(offset: 0, totalBytes: 16 << 20, data: data))
        #expect(try WireMessage.decode(largest.encoded()) == largest)
        var over = frame(kind: 4, body: le64(0) + le64(.max) + le32(0) + le32((16 << 20) + 1))
        over += [UInt8](repeating: 0, count: (16 << 20) + 1)
        over = fixLength(over)
        #expect(decodeError(over) == .limitExceeded(field: "weightChunk.data", value: (16 << 20) + 1, limit: 16 << 20))
    }
}
