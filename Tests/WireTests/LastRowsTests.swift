import StrataWire
import Testing

/// `lastRowsOnly` shapes a result's payload, never a forward's: a forward carries every token's
/// row and only asks the last stage to send back the last one of each entry.
struct LastRowsTests {
    let entries: [Activations.Entry] = [.init(sequence: 1, position: 0, tokenCount: 3), .init(sequence: 2, position: 9, tokenCount: 1)]

    func activations(rows: Int) -> Activations {
        Activations(requestID: 5, lastRowsOnly: true, type: .f32, dim: 2, entries: entries,
                    payload: ActivationCodec.encode((0 ..< rows * 2).map(Float.init), as: .f32))
    }

    @Test func forwardCarriesEveryRow() throws {
        let full = WireMessage.forward(activations(rows: 4))
        #expect(try WireMessage.decode(full.encoded()) == full)
        #expect(throws: WireError.self) { try WireMessage.decode(WireMessage.forward(activations(rows: 2)).encoded()) }
    }

    @Test func resultCarriesOneRowPerEntry() throws {
        let last = WireMessage.result(activations(rows: 2))
        #expect(try WireMessage.decode(last.encoded()) == last)
        #expect(throws: WireError.self) { try WireMessage.decode(WireMessage.result(activations(rows: 4)).encoded()) }
    }
}
