#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ
import Synchronization

/// The ZeroMQ authentication handler (ZAP, RFC 27) of one context, with an allow-list of
/// CurveZMQ public keys: a CURVE server socket of the context completes a handshake only with
/// a client whose key is on the list, and every message from that client then carries the
/// client's key as its `User-Id` (see ``ZMQSocket/receiveAuthenticated(dontWait:)``). A client
/// with any other key gets no handshake, so nothing it sends is ever delivered and nothing is
/// answered.
///
/// A key not on the list is not refused at once: its handshake waits up to `grace` for the
/// key to be trusted (a next stage may be told of its previous stage a moment after that stage
/// connects), and is refused then. libzmq gives a refused client up for good; the wait costs a
/// stranger nothing but time, and at most ``pendingLimit`` handshakes wait at once.
///
/// Create it before any CURVE server socket of the context binds: libzmq lets every client
/// in when no handler is there. It answers on a thread of its own until ``stop()`` or the
/// context's shutdown; the list may change at any time from any thread.
public final class ZAPHandler: Sendable {
    /// The address libzmq asks, in every context.
    static let endpoint = "inproc://zeromq.zap.01"

    /// What the answering thread shares with this handle (the thread holds it, not the
    /// handle, so dropping the handle stops the thread).
    private final class Core: Sendable {
        struct State {
            /// Key → what it is known as (a role, for logs).
            var trusted: [[UInt8]: String] = [:]
            var refusals = 0
        }
        let state = Mutex(State())
        let stopped = Atomic<Bool>(false)
        let finished = Atomic<Bool>(false)
        let onRefusal: (@Sendable (_ address: String, _ key: [UInt8]) -> Void)?

        init(onRefusal: (@Sendable (_ address: String, _ key: [UInt8]) -> Void)?) { self.onRefusal = onRefusal }
    }
    private let core: Core

    /// Handshakes of unknown keys that may wait at once; more are refused at once.
    public static let pendingLimit = 256

    /// Binds the handler in `context` (EADDRINUSE when the context has one already) and starts
    /// answering. `onRefusal` is told of every refused handshake: the peer's address and key.
    public init(context: ZMQContext, grace: Duration = .seconds(3),
                onRefusal: (@Sendable (_ address: String, _ key: [UInt8]) -> Void)? = nil) throws(ZMQError) {
        // A ROUTER, not a REP, so that requests can wait: libzmq's request carries an empty
        // delimiter frame after the routing id, and the reply must too.
        let socket = try ZMQSocket(context, type: .router)
        try socket.setLinger(milliseconds: 0)
        try socket.bind(Self.endpoint)
        let core = Core(onRefusal: onRefusal)
        self.core = core
        detachThread { Self.serve(socket, core, grace: grace) }
    }

    /// Trusts `key`, known as `name` (replacing what it was known as).
    public func trust(_ key: [UInt8], as name: String) {
        core.state.withLock { $0.trusted[key] = name }
    }

    /// Trusts exactly `keys` among those known as `name`: others known so are dropped.
    public func setTrusted(_ keys: some Sequence<[UInt8]>, as name: String) {
        core.state.withLock { s in
            s.trusted = s.trusted.filter { $0.value != name }
            for key in keys { s.trusted[key] = name }
        }
    }

    /// What `key` is trusted as; nil when it is not.
    public func name(of key: [UInt8]) -> String? { core.state.withLock { $0.trusted[key] } }

    /// Handshakes refused so far.
    public var refusals: Int { core.state.withLock { $0.refusals } }

    /// Stops answering, within 100 ms (handshakes after that stall and never complete).
    public func stop() {
        core.stopped.store(true, ordering: .releasing)
        while !core.finished.load(ordering: .acquiring) { usleep(1_000) }
    }

    deinit { stop() }

    /// A ZAP request waiting for its key to be trusted.
    private struct Waiting {
        let envelope: [[UInt8]]
        let request: [[UInt8]]
        let key: [UInt8]
        let deadline: ContinuousClock.Instant
    }

    private static func serve(_ socket: ZMQSocket, _ core: Core, grace: Duration) {
        defer {
            socket.close()
            core.finished.store(true, ordering: .releasing)
        }
        var waiting: [Waiting] = []
        while !core.stopped.load(ordering: .acquiring) {
            do {
                if try ZMQ.poll([(socket, .readable)], timeoutMilliseconds: waiting.isEmpty ? 100 : 10)[0].contains(.readable) {
                    while let frames = try socket.receive(dontWait: true) {
                        // Routing id and delimiter, then the request.
                        guard frames.count >= 2, frames[1].isEmpty else { continue }
                        let envelope = Array(frames[..<2]), request = Array(frames[2...])
                        switch verdict(on: request, core) {
                        case let .answer(reply): try socket.send(envelope + reply)
                        case let .unknown(key):
                            if waiting.count < pendingLimit {
                                waiting.append(Waiting(envelope: envelope, request: request, key: key, deadline: .now + grace))
                            } else {
                                try socket.send(envelope + refuse(request, key, core))
                            }
                        }
                    }
                }
                let now = ContinuousClock.now
                var still: [Waiting] = []
                for w in waiting {
                    if core.state.withLock({ $0.trusted[w.key] }) != nil {
                        try socket.send(w.envelope + welcome(w.request, w.key))
                    } else if now >= w.deadline {
                        try socket.send(w.envelope + refuse(w.request, w.key, core))
                    } else {
                        still.append(w)
                    }
                }
                waiting = still
            } catch {
                // Only the context's shutdown ends it; anything else is one bad request.
                if error.isTerminated { return }
            }
        }
    }

    private enum Verdict {
        case answer([[UInt8]])
        /// A well-formed CURVE request from a key not trusted (yet).
        case unknown([UInt8])
    }

    private static let version = Array("1.0".utf8)

    /// RFC 27: request = version, request id, domain, address, routing id, mechanism, then the
    /// mechanism's credentials (CURVE: the client's 32-byte public key). Reply = version,
    /// request id, status code, status text, user id, metadata.
    private static func verdict(on request: [[UInt8]], _ core: Core) -> Verdict {
        func refusal(_ why: String) -> Verdict {
            core.state.withLock { $0.refusals += 1 }
            return .answer([version, request.count > 1 ? request[1] : [], Array("400".utf8), Array(why.utf8), [], []])
        }
        guard request.count >= 6, request[0] == version else { return refusal("malformed ZAP request") }
        guard String(decoding: request[5], as: UTF8.self) == "CURVE", request.count == 7, request[6].count == 32 else {
            return refusal("only CurveZMQ clients are taken")
        }
        let key = request[6]
        return core.state.withLock({ $0.trusted[key] }) != nil ? .answer(welcome(request, key)) : .unknown(key)
    }

    /// The reply letting `key` in: its Z85 text becomes the User-Id of its messages.
    private static func welcome(_ request: [[UInt8]], _ key: [UInt8]) -> [[UInt8]] {
        [version, request[1], Array("200".utf8), Array("OK".utf8), Array(ZMQ.z85Encode(key)!.utf8), []]
    }

    private static func refuse(_ request: [[UInt8]], _ key: [UInt8], _ core: Core) -> [[UInt8]] {
        core.state.withLock { $0.refusals += 1 }
        core.onRefusal?(String(decoding: request[3], as: UTF8.self), key)
        return [version, request[1], Array("400".utf8), Array("unknown key".utf8), [], []]
    }
}

/// Runs `body` on a new detached thread (this module does without Foundation).
func detachThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create: \(rc)")
    pthread_detach(thread)
}
