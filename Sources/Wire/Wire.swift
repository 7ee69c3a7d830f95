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
    public static let protocolVersion: UInt16 = 6

    /// Size of the frame header: magic (4), version (2), kind (1), flags (1), body length (4).
    public static let headerBytes = 12

    /// The largest frame accepted, header included: room for the largest payload plus its
    /// entries and the other fields (or for the largest weight chunk or assignment). Every
    /// socket between Strata's processes is bound with this as ZeroMQ's message limit, so no
    /// frame makes a peer allocate more before it is decoded; senders split what is larger.
    public static let maxFrameBytes = maxPayloadBytes + (128 << 10)

    /// The largest activation payload accepted: 1,024 rows of 4,096 f32 values (a coordinator
    /// sends fewer rows at once where its model's rows are wider).
    public static let maxPayloadBytes = 16 << 20
}
