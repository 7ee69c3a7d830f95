/// Strata's binary protocol between coordinator and workers. Depends on nothing else of ours.
///
/// A frame is a 12-byte header (``magic``, ``protocolVersion``, kind, flags, body length) and
/// then the body; everything little-endian. docs/wire-protocol.md is the specification.
public enum Wire {
    /// The first four bytes of every frame, "STRA": a stray connection or a desynchronised
    /// stream fails here instead of being read as a message.
    public static let magic: [UInt8] = Array("STRA".utf8)

    /// Protocol version, kept apart from the application version. Peers speak exactly one
    /// version; a frame of another version is refused (except the frozen error frame).
    public static let protocolVersion: UInt16 = 5

    /// Size of the frame header: magic (4), version (2), kind (1), flags (1), body length (4).
    public static let headerBytes = 12

    /// The largest frame accepted, header included: room for the largest payload plus its
    /// entries and the other fields.
    public static let maxFrameBytes = 272 << 20

    /// The largest activation payload accepted.
    public static let maxPayloadBytes = 256 << 20
}
