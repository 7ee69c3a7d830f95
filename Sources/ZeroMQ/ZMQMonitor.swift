#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// What happens to a socket's connections, as `zmq_socket_monitor` reports it.
public struct ZMQSocketEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let connected = ZMQSocketEvents(rawValue: ZMQ_EVENT_CONNECTED)
    /// The ZMTP handshake with a peer is done: messages flow.
    public static let handshakeSucceeded = ZMQSocketEvents(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    /// A peer's connection broke (the peer process died, or closed it).
    public static let disconnected = ZMQSocketEvents(rawValue: ZMQ_EVENT_DISCONNECTED)
    public static let connectRetried = ZMQSocketEvents(rawValue: ZMQ_EVENT_CONNECT_RETRIED)
    /// The ZMTP handshake failed: the peer's CurveZMQ key was refused (`…Auth`), the two sides
    /// disagree on the security mechanism or the keys (`…Protocol`), or the connection broke
    /// during it (`…NoDetail`).
    public static let handshakeFailedAuth = ZMQSocketEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    public static let handshakeFailedProtocol = ZMQSocketEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
    public static let handshakeFailedNoDetail = ZMQSocketEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    public static let handshakeFailed: ZMQSocketEvents = [.handshakeFailedAuth, .handshakeFailedProtocol, .handshakeFailedNoDetail]
}

/// A PAIR socket receiving the events of another socket's connections: poll it like any
/// socket, and read the events with `next()`.
public final class ZMQMonitor: @unchecked Sendable {
    /// Poll this for `.readable`.
    public let socket: ZMQSocket

    /// Starts monitoring `events` of `watched`. Use it from the thread that polls it.
    public init(_ watched: ZMQSocket, events: ZMQSocketEvents) throws(ZMQError) {
        let endpoint = "inproc://strata-monitor-\(UInt64.random(in: 0 ... .max))"
        let handle = try watched.live("zmq_socket_monitor")
        guard zmq_socket_monitor(handle, endpoint, events.rawValue) == 0 else { throw .last("zmq_socket_monitor \(endpoint)") }
        socket = try ZMQSocket(watched.context, type: .pair)
        try socket.setLinger(milliseconds: 0)
        try socket.connect(endpoint)
    }

    /// The next event waiting, if one is: what happened, the event's value (for a failed
    /// handshake: the ZAP status code, e.g. 400, or libzmq's protocol error code) and the
    /// peer's endpoint.
    public func next() throws(ZMQError) -> (event: ZMQSocketEvents, value: UInt32, endpoint: String)? {
        guard let frames = try socket.receive(dontWait: true), frames.count == 2, frames[0].count >= 6 else { return nil }
        let head = frames[0]
        let event = Int32(head[0]) | Int32(head[1]) << 8
        let value = UInt32(head[2]) | UInt32(head[3]) << 8 | UInt32(head[4]) << 16 | UInt32(head[5]) << 24
        return (ZMQSocketEvents(rawValue: event), value, String(decoding: frames[1], as: UTF8.self))
    }

    public func close() { socket.close() }
}
