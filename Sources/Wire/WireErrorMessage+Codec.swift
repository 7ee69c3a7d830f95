/// Error body, frozen in every protocol version: code u16, requestID u64, message string (at
/// most 4096 bytes).
extension WireErrorMessage {
    func write(to w: inout ByteWriter) {
        w.u16(code.rawValue)
        w.u64(requestID)
        // An error must reach the peer even when its text is long (a description quoting
        // something big): cut it to the limit at a character boundary rather than send a frame
        // the peer would refuse.
        w.string(Self.clipped(message, to: Wire.Limits.errorMessageBytes))
    }

    static func read(from r: inout ByteReader) throws(WireError) -> WireErrorMessage {
        // A code this build does not know comes from a newer peer: keep it as `.other`.
        let code = Code(rawValue: try r.u16("error.code")) ?? .other
        let requestID = try r.u64("error.requestID")
        let message = try r.string(limit: Wire.Limits.errorMessageBytes, "error.message")
        return WireErrorMessage(code: code, requestID: requestID, message: message)
    }

    /// `s` cut to at most `limit` bytes of UTF-8, at a Unicode scalar boundary.
    static func clipped(_ s: String, to limit: Int) -> String {
        let utf8 = s.utf8
        guard utf8.count > limit else { return s }
        var end = utf8.index(utf8.startIndex, offsetBy: limit)
        // Back up over continuation bytes (10xxxxxx) to the start of a scalar.
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[..<end], as: UTF8.self)
    }
}
