/// Frames: the 12-byte header, then the body of the message's kind.
///
///     offset 0  magic "STRA"
///     offset 4  protocol version, u16
///     offset 6  kind, u8 (MessageKind)
///     offset 7  flags, u8 (0 in version 1)
///     offset 8  body length, u32
///     offset 12 body
extension WireMessage {
    /// This message as one frame, ready to send.
    ///
    /// Encoding never fails and writes what it is given: a message that breaks a limit (a
    /// 300-byte peer ID, 5000 entries) is encoded as it is, and the peer's decoder refuses it
    /// with an error naming the field. The exception is an error message's text, cut to 4096
    /// bytes so that an error always gets through.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Wire.headerBytes + bodySizeHint)
        w.raw(Wire.magic)
        w.u16(Wire.protocolVersion)
        w.u8(kind.rawValue)
        w.u8(0)  // flags
        w.u32(0)  // body length, patched below
        switch self {
        case let .hello(m): m.write(to: &w)
        case let .assign(m): m.write(to: &w)
        case let .loadReport(m): m.write(to: &w)
        case let .weightChunk(m): m.write(to: &w)
        case let .forward(m), let .result(m): m.write(to: &w)
        case let .release(m): m.write(to: &w)
        case let .heartbeat(m): m.write(to: &w)
        case let .error(m): m.write(to: &w)
        case .shutdown: break
        }
        // Clamped: a body too big for the field (over 4 GiB) is refused by the peer's frame limit.
        w.patchU32(UInt32(clamping: w.byteCount - Wire.headerBytes), at: 8)
        return w.bytes
    }

    /// Decodes one frame: the header, then the body of its kind, which must end exactly at
    /// the end of the frame.
    ///
    /// A frame of another protocol version is refused with `.unsupportedVersion`, except an
    /// error frame (kind 255), whose layout is frozen: it decodes under any version, so a peer
    /// can always read why it was refused. Nothing is allocated for a length or count before it
    /// has been checked against its limit and against the bytes left.
    public static func decode(_ frame: UnsafeRawBufferPointer) throws(WireError) -> WireMessage {
        var header = ByteReader(frame)
        try header.need(Wire.headerBytes, "header")
        guard try header.take(4, "header.magic").elementsEqual(Wire.magic) else { throw .badMagic }
        let version = try header.u16("header.version")
        let rawKind = try header.u8("header.kind")
        // The version decides how everything else is read, so it is checked first; only the
        // frozen error frame is read whatever its version.
        guard version == Wire.protocolVersion || rawKind == MessageKind.error.rawValue else {
            throw .unsupportedVersion(version)
        }
        guard let kind = MessageKind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        let flags = try header.u8("header.flags")
        guard flags == 0 else {
            throw .invalidValue(field: "header.flags", reason: "must be 0, got \(flags)")
        }
        let declared = Wire.headerBytes + Int(try header.u32("header.bodyLength"))
        guard declared <= Wire.maxFrameBytes else {
            throw .limitExceeded(field: "frame", value: declared, limit: Wire.maxFrameBytes)
        }
        guard declared == frame.count else { throw .frameLength(declared: declared, actual: frame.count) }

        var r = ByteReader(frame, offset: Wire.headerBytes)
        let message: WireMessage = switch kind {
        case .hello: .hello(try Hello.read(from: &r))
        case .assign: .assign(try Assign.read(from: &r))
        case .loadReport: .loadReport(try LoadReport.read(from: &r))
        case .weightChunk: .weightChunk(try WeightChunk.read(from: &r))
        case .forward: .forward(try Activations.read(from: &r, "forward", isResult: false))
        case .result: .result(try Activations.read(from: &r, "result", isResult: true))
        case .release: .release(try Release.read(from: &r))
        case .heartbeat: .heartbeat(try Heartbeat.read(from: &r))
        case .shutdown: .shutdown
        case .error: .error(try WireErrorMessage.read(from: &r))
        }
        // One encoding per message: nothing may follow the body.
        guard r.remaining == 0 else { throw .trailingBytes(r.remaining) }
        return message
    }

    /// Decodes one frame held in an array, like the `UnsafeRawBufferPointer` overload.
    public static func decode(_ frame: [UInt8]) throws(WireError) -> WireMessage {
        // Array.withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        let result = frame.withUnsafeBytes { bytes in
            Result { () throws(WireError) -> WireMessage in try decode(bytes) }
        }
        return try result.get()
    }

    /// Enough capacity for the big fields, so a 256 MiB payload is not copied while growing.
    private var bodySizeHint: Int {
        switch self {
        case let .weightChunk(m): 32 + m.data.count
        case let .forward(m), let .result(m):
            32 + m.entries.count * Activations.entryBytes + m.stageNanos.count * 8 + m.payload.count
        case let .release(m): 7 + m.sequences.count * 8
        case let .error(m): 12 + min(m.message.utf8.count, Wire.Limits.errorMessageBytes)
        default: 256
        }
    }
}
