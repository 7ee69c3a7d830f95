#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// Socket options: each is one `zmq_setsockopt`, and libzmq's refusal is thrown. Most take
/// effect for connections made afterwards, so set them before `bind`/`connect`.
extension ZMQSocket {
    /// How long (ms) a closed socket keeps delivering queued messages: -1 forever (libzmq's
    /// default, which can hang context termination), 0 drops them at once. This module's
    /// sockets start at 1000 ms.
    public func setLinger(milliseconds: Int) throws(ZMQError) {
        try setOption(ZMQ_LINGER, "ZMQ_LINGER", milliseconds)
    }

    /// The most outbound messages queued per peer before sends block or fail with EAGAIN
    /// (0 = unlimited; libzmq's default is 1000).
    public func setSendHighWaterMark(_ n: Int) throws(ZMQError) {
        try setOption(ZMQ_SNDHWM, "ZMQ_SNDHWM", n)
    }

    /// The most inbound messages queued per peer before libzmq stops reading from it
    /// (0 = unlimited; libzmq's default is 1000).
    public func setReceiveHighWaterMark(_ n: Int) throws(ZMQError) {
        try setOption(ZMQ_RCVHWM, "ZMQ_RCVHWM", n)
    }

    /// The identity a ROUTER peer sees for this socket: 1…255 bytes (libzmq throws EINVAL
    /// otherwise), not starting with 0 (EINVAL here).
    public func setRoutingID(_ id: [UInt8]) throws(ZMQError) {
        // libzmq 4.3.4 accepts a leading 0 and the ROUTER then sees it as given (measured), but
        // the ids a ROUTER generates for anonymous peers are a 0 byte plus four more, so a chosen
        // one starting with 0 could collide with them; libzmq's documentation reserves them.
        if id.first == 0 { throw ZMQError(operation: "setsockopt ZMQ_ROUTING_ID (starts with 0)", code: EINVAL) }
        try setOption(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", bytes: id)
    }

    /// The largest inbound message (in bytes) accepted; a peer that sends a larger one is
    /// disconnected and the message is never delivered. -1 (the default) = no limit.
    public func setMaxMessageSize(_ bytes: Int) throws(ZMQError) {
        // ZMQ_MAXMSGSIZE is the one option here that is an int64_t.
        var value = Int64(bytes)
        try setOption(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", raw: &value, size: MemoryLayout<Int64>.size)
    }

    /// ROUTER only: a message addressed to an unknown routing id fails with EHOSTUNREACH
    /// instead of being dropped silently.
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", on ? 1 : 0)
    }

    /// ROUTER only: a peer that connects again with a routing id already in use takes it over
    /// (the old connection is dropped), instead of being refused. With peers that set their own
    /// routing id, a reconnect after a network break keeps its identity.
    public func setRouterHandover(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_ROUTER_HANDOVER, "ZMQ_ROUTER_HANDOVER", on ? 1 : 0)
    }

    /// A routing id for this socket that no other peer will choose: 16 random bytes, the first
    /// not 0. A DEALER that sets one is the same peer to a ROUTER after it reconnects.
    public func setRandomRoutingID() throws(ZMQError) {
        var id = (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255) }
        id[0] = UInt8.random(in: 1 ... 255)
        try setRoutingID(id)
    }

    /// Queue outbound messages only to completed connections, so that nothing waits in a pipe
    /// for a peer that may never come.
    public func setImmediate(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", on ? 1 : 0)
    }

    /// How long (ms) a blocking send waits before throwing EAGAIN; -1 (the default) = forever.
    public func setSendTimeout(milliseconds: Int) throws(ZMQError) {
        try setOption(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", milliseconds)
    }

    /// How long (ms) a blocking receive waits before returning nil; -1 (the default) = forever.
    public func setReceiveTimeout(milliseconds: Int) throws(ZMQError) {
        try setOption(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", milliseconds)
    }

    /// The first reconnection delay (ms) and, when `max` exceeds it, the cap of its exponential
    /// back-off (0 = no back-off).
    public func setReconnectInterval(milliseconds: Int, max: Int) throws(ZMQError) {
        try setOption(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", milliseconds)
        try setOption(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX", max)
    }

    /// ZMTP heartbeats, all in ms: send a PING every `interval`, drop the connection when
    /// nothing arrives for `timeout` after one, and ask the peer to drop it after `ttl` of
    /// silence (libzmq keeps `ttl` in tenths of a second, up to 6553.5 s). 0 turns each off.
    public func setHeartbeat(interval: Int, timeout: Int, ttl: Int) throws(ZMQError) {
        try setOption(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", interval)
        try setOption(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", timeout)
        try setOption(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", ttl)
    }

    /// TCP keep-alive probes on this socket's connections (off: explicitly disabled rather than
    /// the OS default).
    public func setTCPKeepalive(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_TCP_KEEPALIVE, "ZMQ_TCP_KEEPALIVE", on ? 1 : 0)
    }

    /// SUB only: receive messages whose first frame starts with `prefix` (empty = everything).
    public func subscribe(_ prefix: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", bytes: prefix)
    }

    // MARK: - Plumbing

    /// Sets an `int` option; values that do not fit are EINVAL rather than a trap.
    func setOption(_ option: Int32, _ name: String, _ value: Int) throws(ZMQError) {
        guard var int = Int32(exactly: value) else {
            throw ZMQError(operation: "setsockopt \(name) \(value)", code: EINVAL)
        }
        try setOption(option, name, raw: &int, size: MemoryLayout<Int32>.size)
    }

    /// Sets a binary option.
    func setOption(_ option: Int32, _ name: String, bytes: [UInt8]) throws(ZMQError) {
        let socket = try live("setsockopt \(name)")
        // An empty array may have no storage; libzmq still wants a valid pointer with length 0.
        var empty: UInt8 = 0
        let rc = bytes.isEmpty
            ? zmq_setsockopt(socket, option, &empty, 0)
            : bytes.withUnsafeBytes { zmq_setsockopt(socket, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw .last("setsockopt \(name)") }
    }

    /// Sets an option from `size` bytes at `raw`.
    func setOption(_ option: Int32, _ name: String, raw: UnsafeRawPointer, size: Int) throws(ZMQError) {
        let socket = try live("setsockopt \(name)")
        guard zmq_setsockopt(socket, option, raw, size) == 0 else { throw .last("setsockopt \(name)") }
    }
}

extension ZMQSocket {
    /// What every link between Strata's processes sets: messages up to `maxMessageBytes` (a
    /// peer that sends more is disconnected), ZeroMQ heartbeats every second with a dead peer
    /// noticed after 5 s, and a linger of a second, long enough for a last message to leave
    /// on close and never forever.
    public func configureAsPeerLink(maxMessageBytes: Int) throws(ZMQError) {
        try setMaxMessageSize(maxMessageBytes)
        try setHeartbeat(interval: 1000, timeout: 5000, ttl: 10000)
        try setLinger(milliseconds: 1000)
    }
}
