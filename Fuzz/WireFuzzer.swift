// libFuzzer harness for the wire decoder (built with Sources/Wire by scripts/fuzz.sh).
//
// Every input is decoded as a frame. The decoder must throw a WireError or return a message,
// never crash, hang or leak (AddressSanitizer and LeakSanitizer watch); and a message it
// returns must survive its own round trip: encoded and decoded again, it is the same message.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireFrame(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frame = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? WireMessage.decode(frame) else { return 0 }
    let again: WireMessage
    do { again = try WireMessage.decode(message.encoded()) } catch {
        fatalError("a decoded \(message.kind) does not decode after encoding: \(error)")
    }
    if again != message { fatalError("a decoded \(message.kind) changed in its round trip") }
    return 0
}
