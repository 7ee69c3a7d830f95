import CZeroMQ

/// Library-wide facts and functions: version, capabilities, polling (ZMQPoll.swift) and
/// CurveZMQ keys (ZMQCurve.swift).
public enum ZMQ {
    /// The version of the libzmq this process runs against (not the headers it was built with).
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// Whether this libzmq was built with CurveZMQ (`zmq_has("curve")`); without it the CURVE
    /// options and ``curveKeyPair()`` fail.
    public static var hasCurve: Bool { zmq_has("curve") == 1 }
}
