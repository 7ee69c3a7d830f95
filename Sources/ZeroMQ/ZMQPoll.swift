#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// What ``ZMQ/poll(_:timeoutMilliseconds:)`` asks about and reports.
public struct ZMQPollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// A whole message can be received without blocking.
    public static let readable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking.
    public static let writable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

extension ZMQ {
    /// zmq_poll over the sockets; returns, per socket, the events that are ready. timeout -1 =
    /// forever, 0 = check now. Retries EINTR (with remaining time).
    ///
    /// This blocks in the kernel, which is the point: busy-polling with `dontWait` was measured
    /// to starve libzmq's I/O thread on a 2-core machine. Each socket must not be in use by
    /// another thread meanwhile. A closed socket throws ENOTSOCK; a shut-down context ETERM.
    public static func poll(_ items: [(ZMQSocket, ZMQPollEvents)], timeoutMilliseconds: Int) throws(ZMQError) -> [ZMQPollEvents] {
        var pollItems: [zmq_pollitem_t] = []
        pollItems.reserveCapacity(items.count)
        for (socket, events) in items {
            let handle = try socket.live("poll")
            pollItems.append(zmq_pollitem_t(socket: handle, fd: 0, events: events.rawValue, revents: 0))
        }
        let clock = ContinuousClock()
        let start = clock.now
        var remaining = timeoutMilliseconds
        // `items` keeps the sockets (and so their handles) alive until the poll is over.
        try withExtendedLifetime(items) { () throws(ZMQError) in
            while zmq_poll(&pollItems, Int32(pollItems.count), remaining) < 0 {
                let code = zmq_errno()
                guard code == EINTR else { throw ZMQError(operation: "poll", code: code) }
                if timeoutMilliseconds > 0 {
                    let elapsed = start.duration(to: clock.now)
                    let elapsedMilliseconds = Int(elapsed.components.seconds) * 1000
                        + Int(elapsed.components.attoseconds / 1_000_000_000_000_000)
                    remaining = max(0, timeoutMilliseconds - elapsedMilliseconds)
                }
            }
        }
        let known: ZMQPollEvents = [.readable, .writable]
        return pollItems.map { ZMQPollEvents(rawValue: $0.revents).intersection(known) }
    }
}
