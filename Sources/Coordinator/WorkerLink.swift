import Glibc
import StrataWire
import ZeroMQ

/// The coordinator's link to one worker: a DEALER connected to the worker's ROUTER. Control
/// messages go both ways on it; the last stage's results and any stage's errors come back on it.
final class WorkerLink {
    let endpoint: String
    /// Its place among the workers given (`--workers`, then `--standby`, then those that
    /// joined), which orders the pipeline.
    let index: Int
    /// Given with `--standby`: it takes the place of a lost worker only.
    let standby: Bool
    let socket: ZMQSocket
    /// The worker's CurveZMQ public key (the link is encrypted to it); nil on plain links.
    let publicKey: [UInt8]?
    /// Its connection's events: a broken connection is a lost worker, at once.
    let monitor: ZMQMonitor
    /// The worker's hello; nil until it answers ours, and again once it is lost, until it
    /// answers a new one.
    var hello: Hello?
    /// Its stage in the current plan (the one loading, if one is), and that stage's layers.
    var stage = 0
    var layers: Range<Int> = 0 ..< 0
    /// The layers of its stage in the plan serving (empty when it has none), and the layer
    /// boundaries where that stage logs the activations that reach them (`KeptCaches`).
    var servingLayers: Range<Int> = 0 ..< 0
    var logPoints: Set<Int> = []
    var report: LoadReport?
    var streamed = false
    var lastHeard = ContinuousClock.now
    var lastHeartbeat: Heartbeat?
    /// The last encrypted handshake failed (and the coordinator said why).
    var handshakeFailed = false
    /// Handshakes that failed in a row, for failures that one alone does not prove.
    var handshakeFailures = 0
    /// When it was last sent a hello.
    var greeted = ContinuousClock.now
    /// Why it is left out of plans: it refused its stage. A new hello from it clears this.
    var refused: ClusterError?

    /// Its stage's KV cache, as the scheduler sees it.
    var stageCache: Scheduler.StageCache {
        Scheduler.StageCache(endpoint: endpoint, pages: report.map { $0.kvPages > 0 ? Int($0.kvPages) : Int.max } ?? Int.max,
                             pageRows: Int(max(report?.kvPageRows ?? 1, 1)))
    }

    init(context: ZMQContext, endpoint: String, index: Int, standby: Bool = false, security: LinkSecurity,
         publicKey: [UInt8]?) throws(ZMQError) {
        self.endpoint = endpoint
        self.index = index
        self.standby = standby
        self.publicKey = security.keys == nil ? nil : publicKey
        socket = try ZMQSocket(context, type: .dealer)
        monitor = try ZMQMonitor(socket, events: [.handshakeSucceeded, .disconnected, .handshakeFailed])
        try socket.secureAsClient(security, serverKey: publicKey)
        // (Its linger lets a final `shutdown` or `release` leave.)
        try socket.configureAsPeerLink(maxMessageBytes: Wire.maxFrameBytes)
        try socket.setReconnectInterval(milliseconds: 100, max: 2000)
        // The same peer to the worker after a reconnect (a network break, a worker paused past
        // the heartbeat timeout): it still knows this coordinator.
        try socket.setRandomRoutingID()
        try socket.connect(endpoint)
    }

    /// Why a handshake with the worker failed, from the monitor's `event` and its value: nil
    /// for other events. `certain` is false when the connection only closed during the
    /// handshake, which a worker given the wrong key does, but so may a network break.
    static func handshakeFailure(_ event: ZMQSocketEvents, value: UInt32) -> (why: String, certain: Bool)? {
        if event.contains(.handshakeFailedAuth) {
            return ("the worker does not trust this coordinator's key (ZAP status \(value)): add it to the worker's --coordinator-key", true)
        }
        if event.contains(.handshakeFailedProtocol) {
            return ("one side runs with --insecure and the other does not", true)
        }
        if event.contains(.handshakeFailedNoDetail) {
            return ("the worker closed the connection during it: is the key given for it its own (its .pub file), and does it run without --insecure?", false)
        }
        return nil
    }

    /// The worker's error, as the reason it refused what it was asked.
    func refusal(_ e: WireErrorMessage) -> ClusterError {
        switch e.code {
        case .unsupportedVersion: .protocolMismatch(endpoint: endpoint, message: e.message)
        default: .refused(endpoint: endpoint, message: e.message)
        }
    }

    /// Sends without waiting: a worker whose queue is full (it stopped reading) is an error.
    func send(_ message: WireMessage) throws(ZMQError) {
        guard try socket.send(message.encoded(), dontWait: true) else {
            throw ZMQError(operation: "send to \(endpoint) (its queue is full)", code: EAGAIN)
        }
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
