#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// The libzmq socket patterns this module offers.
public enum ZMQSocketType: Sendable, Hashable {
    case pair, publisher, subscriber, request, reply, dealer, router, pull, push

    var rawValue: Int32 {
        switch self {
        case .pair: ZMQ_PAIR
        case .publisher: ZMQ_PUB
        case .subscriber: ZMQ_SUB
        case .request: ZMQ_REQ
        case .reply: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .pull: ZMQ_PULL
        case .push: ZMQ_PUSH
        }
    }
}

/// A socket: use it from one thread at a time (libzmq sockets are not thread-safe); it may be
/// created on one thread and handed to another.
///
/// It is `@unchecked Sendable` so that it can be handed over at all (a raw socket pointer is
/// not `Sendable` in Swift 6); the one-thread-at-a-time rule is the caller's to keep, as it is
/// in C. The socket closes itself when dropped.
///
/// New sockets linger for ``defaultLingerMilliseconds`` rather than libzmq's "forever", so that
/// dropping a socket whose peer is gone cannot hang its context's termination, while a last
/// reply queued just before closing still has time to leave (linger 0 was measured to drop it).
public final class ZMQSocket: @unchecked Sendable {
    /// How long a closed socket keeps trying to deliver queued messages unless
    /// ``setLinger(milliseconds:)`` says otherwise.
    static let defaultLingerMilliseconds: Int32 = 1000

    /// Kept alive by the socket: see ``ZMQContext``.
    let context: ZMQContext
    /// The `void *` from `zmq_socket`; nil once closed.
    private(set) var handle: UnsafeMutableRawPointer?
    /// One `zmq_msg_t` reused by every send and receive, so that its address is stable across
    /// the libzmq calls that use it. Safe to share between calls because a socket is used by
    /// one thread at a time.
    let message: UnsafeMutablePointer<zmq_msg_t>

    /// Creates a socket of `type` in `context`.
    public init(_ context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let socket = zmq_socket(context.handle, type.rawValue) else {
            throw .last("zmq_socket \(type)")
        }
        var linger = Self.defaultLingerMilliseconds
        if zmq_setsockopt(socket, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size) != 0 {
            let error = ZMQError.last("setsockopt ZMQ_LINGER")
            zmq_close(socket)
            throw error
        }
        self.context = context
        self.handle = socket
        self.message = .allocate(capacity: 1)
    }

    deinit {
        close()
        message.deallocate()
    }

    /// Closes the socket; later calls on it throw ENOTSOCK. Idempotent, and also done in `deinit`.
    /// Queued outbound messages keep being delivered in the background for the linger period.
    public func close() {
        guard let socket = handle else { return }
        handle = nil
        // zmq_close fails only with ENOTSOCK, which a handle we have not closed never is.
        let rc = zmq_close(socket)
        assert(rc == 0, "zmq_close: \(ZMQError.last("zmq_close"))")
    }

    /// The open socket handle, or ENOTSOCK for `operation` once closed.
    func live(_ operation: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let socket = handle else { throw ZMQError(operation: operation(), code: ENOTSOCK) }
        return socket
    }

    /// Binds to `endpoint`, e.g. `"tcp://127.0.0.1:*"` (an ephemeral port: see ``lastEndpoint()``),
    /// `"inproc://name"`, `"ipc:///path"`.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let socket = try live("bind \(endpoint)")
        try checkPort(endpoint, "bind")
        guard zmq_bind(socket, endpoint) == 0 else { throw .last("bind \(endpoint)") }
    }

    /// Stops listening on `endpoint` (as ``lastEndpoint()`` spelled it for wildcard binds).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let socket = try live("unbind \(endpoint)")
        try checkPort(endpoint, "unbind")
        guard zmq_unbind(socket, endpoint) == 0 else { throw .last("unbind \(endpoint)") }
    }

    /// Connects to `endpoint`. libzmq connects (and reconnects) in the background, so this
    /// succeeds before, and whether or not, a peer is there.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let socket = try live("connect \(endpoint)")
        try checkPort(endpoint, "connect")
        guard zmq_connect(socket, endpoint) == 0 else { throw .last("connect \(endpoint)") }
    }

    /// Drops the connection to `endpoint`.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let socket = try live("disconnect \(endpoint)")
        try checkPort(endpoint, "disconnect")
        guard zmq_disconnect(socket, endpoint) == 0 else { throw .last("disconnect \(endpoint)") }
    }

    /// EINVAL for a TCP port libzmq would misread: see ``ZMQEndpoint/hasValidTCPPort(_:)``.
    private func checkPort(_ endpoint: String, _ verb: String) throws(ZMQError) {
        guard ZMQEndpoint.hasValidTCPPort(endpoint) else {
            throw ZMQError(operation: "\(verb) \(endpoint)", code: EINVAL)
        }
    }

    /// The endpoint of the last bind or connect, resolved: after `bind("tcp://127.0.0.1:*")`
    /// it is `"tcp://127.0.0.1:41234"`; empty when there was none.
    public func lastEndpoint() throws(ZMQError) -> String {
        let socket = try live("getsockopt ZMQ_LAST_ENDPOINT")
        // libzmq answers EINVAL when the buffer is too small; endpoints are short, but an ipc
        // path need not be, so grow instead of guessing a limit.
        var capacity = 256
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            var size = capacity
            if zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 {
                // `size` counts the terminating NUL.
                let end = buffer.firstIndex(of: 0) ?? min(size, capacity)
                return String(decoding: buffer[..<end], as: UTF8.self)
            }
            let error = ZMQError.last("getsockopt ZMQ_LAST_ENDPOINT")
            guard error.code == EINVAL, capacity < 1 << 16 else { throw error }
            capacity *= 2
        }
    }
}
