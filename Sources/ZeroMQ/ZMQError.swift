import CZeroMQ

/// A failed libzmq call: what was attempted, the errno value libzmq reported, and its text.
///
/// Every failing libzmq call in this module surfaces as one of these (never a crash, never
/// ignored). `code` is a plain errno value, so compare it with `EINVAL`, `EADDRINUSE`,
/// `EHOSTUNREACH`, … from the C library; libzmq's own codes (`ETERM`) are above
/// `ZMQ_HAUSNUMERO`, which is why ``isTerminated`` exists.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    /// What was attempted, with enough detail to act on: `"bind tcp://0.0.0.0:99999"`,
    /// `"send"`, `"receive"`, `"setsockopt ZMQ_LINGER"`.
    public let operation: String
    /// The errno value.
    public let code: Int32
    /// `zmq_strerror(code)`: the C library's text for system codes, libzmq's for its own.
    public let message: String

    /// An error for `operation` with the errno value `code`; the message is looked up.
    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
        self.message = String(cString: zmq_strerror(code))
    }

    /// `"operation: message"`.
    public var description: String { "\(operation): \(message)" }

    /// The socket's context was shut down or terminated (ETERM): the socket is finished and
    /// should be closed; this is the normal way a blocked thread learns it must stop.
    public var isTerminated: Bool { code == ETERM }

    /// The error libzmq reported for this thread's last failed call.
    ///
    /// The errno value is read before `operation` is evaluated: building the string may call
    /// into the C library, which is allowed to change errno even when it succeeds.
    static func last(_ operation: @autoclosure () -> String) -> ZMQError {
        let code = zmq_errno()
        return ZMQError(operation: operation(), code: code)
    }
}
