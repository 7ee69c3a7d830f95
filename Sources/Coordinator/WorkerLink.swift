import StrataWire
import ZeroMQ

/// The coordinator's link to one worker: a DEALER connected to the worker's ROUTER. Control
/// messages go both ways on it; the last stage's results and any stage's errors come back on it.
final class WorkerLink {
    let endpoint: String
    let index: Int
    let socket: ZMQSocket
    var hello: Hello?
    var layers: Range<Int> = 0 ..< 0
    var report: LoadReport?
    var streamed = false
    var lastHeard = ContinuousClock.now
    var lastHeartbeat: Heartbeat?

    init(context: ZMQContext, endpoint: String, index: Int) throws(ZMQError) {
        self.endpoint = endpoint
        self.index = index
        socket = try ZMQSocket(context, type: .dealer)
        // (Its linger lets a final `shutdown` or `release` leave.)
        try socket.configureAsPeerLink(maxMessageBytes: Wire.maxFrameBytes)
        try socket.setReconnectInterval(milliseconds: 100, max: 2000)
        // The same peer to the worker after a reconnect (a network break, a worker paused past
        // the heartbeat timeout): it still knows this coordinator.
        try socket.setRandomRoutingID()
        try socket.connect(endpoint)
    }

    func send(_ message: WireMessage) throws(ZMQError) {
        try socket.send(message.encoded())
    }

    /// The next message waiting, decoded; nil when none is. An undecodable frame is answered
    /// with an error and returned as a thrown `WireError`.
    func receive() throws -> WireMessage? {
        guard let frames = try socket.receive(dontWait: true), let frame = frames.last else { return nil }
        lastHeard = .now
        do {
            return try WireMessage.decode(frame)
        } catch {
            _ = try? socket.send(WireMessage.error(error.reply).encoded(), dontWait: true)
            throw error
        }
    }
}
