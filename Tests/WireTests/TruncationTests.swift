import StrataWire
import Testing

/// Every prefix of every sample's encoding is refused with an error, never a crash: as it
/// arrives (the header's length no longer matches), and with the length fixed so that the body
/// reader itself runs out.
@Suite struct TruncationTests {
    @Test(arguments: Samples.all)
    func everyPrefixThrows(message: WireMessage) {
        let full = message.encoded()
        for n in 0 ..< full.count {
            let error = decodeError(Array(full[..<n]))
            if n < Wire.headerBytes {
                #expect(error == .truncated(field: "header", needed: Wire.headerBytes, available: n))
            } else {
                #expect(error == .frameLength(declared: full.count, actual: n))
            }
        }
    }

    @Test(arguments: Samples.all)
    func everyBodyPrefixIsTruncated(message: WireMessage) {
        let full = message.encoded()
        for n in Wire.headerBytes ..< full.count {
            let error = decodeError(fixLength(Array(full[..<n])))
            guard case let .truncated(field, needed, available)? = error else {
                Issue.record("\(message.kind) body cut to \(n - Wire.headerBytes) bytes: \(String(describing: error))")
                continue
            }
            #expect(!field.isEmpty && needed > available, "\(field)")
        }
    }

    /// Bytes arriving one at a time: each growing prefix is decoded, and only the whole frame
    /// succeeds.
    @Test func oneByteAtATime() throws {
        for message in Samples.all {
            let full = message.encoded()
            var received: [UInt8] = []
            var decoded: WireMessage?
            for byte in full {
                #expect(decoded == nil)
                received.append(byte)
                decoded = try? WireMessage.decode(received)
            }
            #expect(decoded == message)
        }
    }

    @Test func fieldNamesInTruncation() {
        // A hello cut inside its peer ID's bytes names the field.
        let body: [UInt8] = [0x02, 0x05, 0x00, 0x61, 0x62]
        #expect(decodeError(frame(kind: 1, body: body)) == .truncated(field: "hello.peerID", needed: 5, available: 2))
        #expect(WireError.truncated(field: "hello.peerID", needed: 5, available: 2).description
            == "hello.peerID: truncated, needs 5 bytes but only 2 remain")
    }
}
