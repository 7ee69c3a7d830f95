import StrataWire
import Testing

@Suite struct RoundTripTests {
    @Test(arguments: Samples.all)
    func roundTrip(message: WireMessage) throws {
        let frame = message.encoded()
        #expect(frame[6] == message.kind.rawValue)
        #expect(Int(frame[8]) | Int(frame[9]) << 8 | Int(frame[10]) << 16 | Int(frame[11]) << 24 == frame.count - 12)
        #expect(try WireMessage.decode(frame) == message)
        let viaPointer = try frame.withUnsafeBytes { try WireMessage.decode($0) }
        #expect(viaPointer == message)
    }

    /// The decoder reads the frame where it lies: an unaligned start must not matter.
    @Test func unalignedFrame() throws {
        for message in Samples.all {
            let padded = [0xEE] + message.encoded()
            let decoded = try padded.withUnsafeBytes { try WireMessage.decode(UnsafeRawBufferPointer(rebasing: $0[1...])) }
            #expect(decoded == message)
        }
    }

    @Test func everyKindIsSampled() {
        #expect(Set(Samples.all.map(\.kind)) == Set(MessageKind.allCases))
    }

    @Test func limitsExactlyReachedRoundTrip() throws {
        let long = String(repeating: "x", count: 256)
        let hello = Hello(role: .stage, peerID: long, appVersion: String(repeating: "v", count: 64),
                          cpuFeatures: (0 ..< 64).map { _ in String(repeating: "f", count: 32) },
                          models: (0 ..< 64).map { _ in ModelIdentity(sha256: [UInt8](repeating: 1, count: 32), byteCount: 1, name: long) })
        #expect(try WireMessage.decode(WireMessage.hello(hello).encoded()) == .hello(hello))

        let release = WireMessage.release(Release((0 ..< 4096).map { UInt64($0) }, plan: .max, passOn: true))
        #expect(try WireMessage.decode(release.encoded()) == release)

        let error = WireMessage.error(WireErrorMessage(code: .internal, message: String(repeating: "e", count: 4096)))
        #expect(try WireMessage.decode(error.encoded()) == error)

        // 4096 entries whose token counts sum to 65536 rows, last rows only: 4096 × 32 q8_0 values.
        let entries = (0 ..< 4096).map { Activations.Entry(sequence: UInt64($0), position: 0, tokenCount: 16) }
        let payload = [UInt8](repeating: 0, count: 4096 * 34)
        let result = WireMessage.result(Activations(requestID: 1, lastRowsOnly: true, type: .q8_0, dim: 32, entries: entries,
                                                    stageNanos: [UInt64](repeating: 9, count: 256), payload: payload))
        #expect(try WireMessage.decode(result.encoded()) == result)
    }
}
