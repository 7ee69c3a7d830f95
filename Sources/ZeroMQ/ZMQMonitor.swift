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

    /// The next event waiting, if one is: what happened, and the peer's endpoint.
    public func next() throws(ZMQError) -> (event: ZMQSocketEvents, endpoint: String)? {
        guard let frames = try socket.receive(dontWait: true), frames.count == 2, frames[0].count >= 2 else { return nil }
        let event = Int32(frames[0][0]) | Int32(frames[0][1]) << 8
        return (ZMQSocketEvents(rawValue: event), String(decoding: frames[1], as: UTF8.self))
    }

    public func close() { socket.close() }
}
