import StrataWire
import Testing

/// The header: magic, version (and the frozen error frame), kind, flags, length, trailing bytes.
@Suite struct FramingTests {
    private let heartbeat = WireMessage.heartbeat(Heartbeat(nonce: 1)).encoded()

    @Test func badMagic() {
        for i in 0 ..< 4 {
            var f = heartbeat
            f[i] ^= 0x20
            #expect(decodeError(f) == .badMagic)
        }
        #expect(WireError.badMagic.reply.code == .malformed)
    }

    @Test func otherVersionsAreRefused() {
        for version: UInt16 in [0, 1, 2, 3, 4, 5, 7, 0x0100, 0xFFFF] {
            var f = heartbeat
            f[4] = UInt8(version & 0xFF)
            f[5] = UInt8(version >> 8)
            #expect(decodeError(f) == .unsupportedVersion(version))
        }
        // The version is judged first: an unknown kind or bad flags of another version are still
        // a version problem.
        #expect(decodeError(frame(kind: 42, version: 1, flags: 1, body: [1, 2, 3])) == .unsupportedVersion(1))
    }

    @Test func unsupportedVersionReply() throws {
        let reply = WireError.unsupportedVersion(1).reply
        #expect(reply.code == .unsupportedVersion)
        #expect(reply.requestID == 0)
        #expect(reply.message == "protocol version 1 is not supported; this peer speaks 6")
        // The reply is itself a frame any peer can read.
        #expect(try WireMessage.decode(WireMessage.error(reply).encoded()) == .error(reply))
    }

    /// The error frame's body is frozen: it decodes whatever version the header says, so the
    /// refused peer learns why.
    @Test func errorFrameDecodesUnderAnyVersion() throws {
        let body: [UInt8] = le16(1) + le64(5) + str("protocol version 1 is not supported; this peer speaks 6")
        for version: UInt16 in [0, 1, 2, 7, 0xFFFF] {
            let decoded = try WireMessage.decode(frame(kind: 255, version: version, body: body))
            #expect(decoded == .error(WireErrorMessage(code: .unsupportedVersion, requestID: 5,
                                                       message: "protocol version 1 is not supported; this peer speaks 6")))
        }
        // Frozen means frozen: its header rules still hold.
        #expect(decodeError(frame(kind: 255, version: 2, flags: 1, body: body))
            == .invalidValue(field: "header.flags", reason: "must be 0, got 1"))
        #expect(decodeError(frame(kind: 255, version: 2, body: body + [0])) == .trailingBytes(1))
    }

    @Test func unknownErrorCodeIsOther() throws {
        for code: UInt16 in [0, 13, 500, 0xFFFE, 0xFFFF] {
            let decoded = try WireMessage.decode(frame(kind: 255, body: le16(code) + le64(0) + str("?")))
            #expect(decoded == .error(WireErrorMessage(code: .other, message: "?")))
        }
    }

    @Test func unknownKind() {
        for kind: UInt8 in [0, 10, 42, 128, 254] {
            let error = decodeError(frame(kind: kind, body: []))
            #expect(error == .unknownKind(kind))
            #expect(error?.reply.code == .unknownKind)
            #expect(error?.reply.message == "unknown message kind \(kind)")
        }
    }

    @Test func nonzeroFlags() {
        for flags: UInt8 in [1, 0x80, 0xFF] {
            var f = heartbeat
            f[7] = flags
            let error = decodeError(f)
            #expect(error == .invalidValue(field: "header.flags", reason: "must be 0, got \(flags)"))
            #expect(error?.reply.code == .malformed)
        }
    }

    @Test func frameLengthMustMatch() {
        #expect(decodeError(heartbeat + [0]) == .frameLength(declared: heartbeat.count, actual: heartbeat.count + 1))
        #expect(decodeError(Array(heartbeat.dropLast())) == .frameLength(declared: heartbeat.count, actual: heartbeat.count - 1))
        var f = heartbeat
        put32(0xFFFF_FFFF, in: &f, at: 8)
        #expect(decodeError(f) == .limitExceeded(field: "frame", value: 12 + 0xFFFF_FFFF, limit: Wire.maxFrameBytes))
    }

    @Test func trailingBytes() {
        for message in Samples.all {
            let error = decodeError(fixLength(message.encoded() + [0, 0, 0]))
            #expect(error == .trailingBytes(3), "\(message.kind)")
            #expect(error?.description == "3 unexpected bytes after the end of the message")
        }
        #expect(decodeError(frame(kind: 9, body: [0])) == .trailingBytes(1))
    }

    @Test func emptyAndTinyFrames() {
        #expect(decodeError([]) == .truncated(field: "header", needed: 12, available: 0))
        #expect(decodeError(Array("STRA".utf8)) == .truncated(field: "header", needed: 12, available: 4))
    }

    @Test func kindProperty() {
        #expect(WireMessage.forward(Samples.forward).kind == .forward)
        #expect(WireMessage.result(Samples.forward).kind == .result)
        #expect(WireMessage.shutdown.kind == .shutdown)
        #expect(WireMessage.release(Release([])).kind == .release)
    }
}
