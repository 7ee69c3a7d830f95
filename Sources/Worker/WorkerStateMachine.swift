import StrataModel
import StrataWire

/// The worker's side of the protocol, with no sockets and no files: each message that arrives
/// on its ROUTER goes in with the peer's routing id, and what to do comes out (answer a peer,
/// start on an assignment, store a chunk of weights, run activations, release sequences, stop).
/// `WorkerServer` does the work and tells it how loading went.
///
/// The rules: a peer says hello before anything else; only the peer that said hello as the
/// coordinator may assign, stream weights or stop, and the last one to assign is the one
/// answered; the coordinator and a previous stage (passing one on) may release sequences; with encrypted links, a peer is only the role its key is trusted for;
/// activations run only on a loaded stage of the plan they were sent under (the
/// top 32 bits of their requestID). A new plan loads beside the stage serving the last one,
/// which keeps running its batches until the first batch of the new plan arrives (then it is
/// retired); a batch of a plan whose stage is gone is dropped.
package struct WorkerStateMachine {
    package typealias Peer = [UInt8]

    package enum Action: Equatable {
        case send(WireMessage, to: Peer)
        /// Answer a coordinator's hello with the worker's own.
        case greet(Peer)
        /// Start on an assignment (whatever came before it is dropped).
        case assign(Assign)
        /// A chunk of the stage file the coordinator streams.
        case storeChunk(WeightChunk)
        /// Activations to run, with the others that arrived together.
        case run(Activations)
        case release(Release)
        /// Answer a heartbeat with the stage's figures.
        case answerHeartbeat(nonce: UInt64, to: Peer)
        /// Drop the stages of plans before this one: its first batch has arrived.
        case retire(before: UInt32)
        case stop
        case log(String)
    }

    /// Where the stage is.
    package enum Phase: Equatable {
        case idle
        /// Assigned; loading, or waiting for or receiving weights.
        case loading
        /// Receiving the stage file in chunks.
        case receiving
        case ready
    }

    private var roles: [Peer: Hello.Role] = [:]
    /// The coordinator that assigned the stage: errors and results go to it.
    package private(set) var coordinator: Peer?
    package private(set) var phase: Phase = .idle
    /// The plan of the last assignment.
    package private(set) var plan: UInt32?
    /// Plans with a loaded stage: the last one's, and until its first batch, the one before.
    package private(set) var runnable: Set<UInt32> = []
    /// `rebuild` forwards of the plan loading, run once it is loaded: a previous stage sends them
    /// as soon as its own stage of the plan is in place. At most the rows the assignment keeps,
    /// and as many bytes as `batchRows` rows a frame may take for each.
    private var heldForwards: [Activations] = []
    private var held = (rows: 0, bytes: 0)
    private var holdLimit = (rows: 0, bytes: 0)

    /// What the worker knows of a peer beyond its routing id.
    package enum Trust: Equatable {
        /// Links in the clear (`--insecure`): a peer is what its hello claims.
        case unauthenticated
        /// Its CurveZMQ key is trusted for this role: its hello may claim no other.
        case trusted(Hello.Role)
        /// Its key was trusted when it connected but no longer is (a stage of a retired plan):
        /// what it sends is dropped.
        case untrusted
    }

    package init() {}

    /// A message of frames from the ROUTER: the peer's routing id, then the message.
    package mutating func received(_ frames: [[UInt8]], trust: Trust = .unauthenticated) -> [Action] {
        guard let peer = frames.first else { return [] }
        guard frames.count == 2 else {
            return [.send(.error(.init(code: .malformed, message: "a message is one frame; got \(frames.count - 1)")), to: peer)]
        }
        let message: WireMessage
        do { message = try WireMessage.decode(frames[1]) } catch {
            return [.log("undecodable frame from a peer: \(error)"), .send(.error(error.reply), to: peer)]
        }
        return received(message, from: peer, trust: trust)
    }

    package mutating func received(_ message: WireMessage, from peer: Peer, trust: Trust = .unauthenticated) -> [Action] {
        switch trust {
        case .unauthenticated: break
        case .untrusted:
            roles[peer] = nil
            return [.log("dropped \(message.kind) from a peer whose key is no longer trusted")]
        case let .trusted(role):
            if case let .hello(h) = message, h.role != role {
                return [.log("refused a hello as \(h.role) from a peer whose key is trusted as \(role) only"),
                        .send(.error(.init(code: .unauthorized, message: "this key is trusted as \(role) only, not as \(h.role)")), to: peer)]
            }
        }
        if case let .hello(h) = message {
            roles[peer] = h.role
            guard h.role == .coordinator else { return [] }
            return [.log("coordinator \(h.peerID) (\(h.appVersion)) connected"), .greet(peer)]
        }
        guard let role = roles[peer] else {
            return [.send(.error(.init(code: .unknownPeer, requestID: requestID(of: message), message: "\(message.kind) from a peer that has not said hello")), to: peer)]
        }
        switch message {
        case let .forward(a):
            let batchPlan = UInt32(truncatingIfNeeded: a.requestID >> 32)
            guard runnable.contains(batchPlan) else {
                // A batch of a plan replaced meanwhile: dropped (the coordinator replays it).
                if let plan, batchPlan < plan { return [] }
                if a.rebuild, batchPlan == plan, phase == .loading || phase == .receiving {
                    guard held.rows + a.rowCount <= holdLimit.rows, held.bytes + a.payload.count <= holdLimit.bytes else {
                        return [.send(.error(.init(code: .malformed, requestID: a.requestID, message:
                            "rebuild forwards of more than the \(holdLimit.rows) positions plan \(batchPlan) keeps")), to: coordinator ?? peer)]
                    }
                    heldForwards.append(a)
                    held = (held.rows + a.rowCount, held.bytes + a.payload.count)
                    return []
                }
                return [.send(.error(.init(code: .notAssigned, requestID: a.requestID, message: "no stage is loaded here")), to: coordinator ?? peer)]
            }
            let older = runnable.filter { $0 < batchPlan }
            guard !older.isEmpty else { return [.run(a)] }
            runnable.subtract(older)
            return [.retire(before: batchPlan), .run(a)]
        case let .heartbeat(h):
            return [.answerHeartbeat(nonce: h.nonce, to: peer)]
        case let .error(e):
            return [.log("peer reports: \(e.message)")]
        case .hello, .loadReport, .result:
            return [.send(.error(.init(code: .malformed, message: "a worker does not take \(message.kind) messages")), to: peer)]
        case let .release(r) where role == .stage:
            // A release travelling the pipeline, in order with the batches before it.
            return [.release(r)]
        case .assign, .weightChunk, .release, .shutdown:
            guard role == .coordinator else {
                return [.send(.error(.init(code: .unknownPeer, message: "\(message.kind) from a peer that is not a coordinator")), to: peer)]
            }
            return control(message, from: peer)
        }
    }

    private mutating func control(_ message: WireMessage, from peer: Peer) -> [Action] {
        switch message {
        case let .assign(a):
            coordinator = peer
            phase = .loading
            if a.plan != plan { dropHeldForwards() }
            plan = a.plan
            let keptRows = a.keep?.sequences.reduce(0) { $0 + Int($1.length) } ?? 0
            holdLimit = (keptRows, keptRows * (Wire.maxPayloadBytes / Int(a.batchRows)))
            // The same plan assigned again replaces its stage.
            runnable.remove(a.plan)
            return [.assign(a)]
        case let .weightChunk(chunk):
            guard peer == coordinator, phase == .receiving else {
                return [.send(.error(.init(code: .notAssigned, message: "weight chunk without an assignment that streams weights")), to: peer)]
            }
            return [.storeChunk(chunk)]
        case let .release(r):
            return [.release(r)]
        case .shutdown:
            return [.log("shutting down at the coordinator's request"), .stop]
        default:
            return []
        }
    }

    // MARK: How loading went (from the worker)

    /// The stage file is on its way in chunks.
    package mutating func receiving() { phase = .receiving }

    /// The last assignment's stage is loaded: its activations may run, those held first.
    @discardableResult
    package mutating func loaded() -> [Action] {
        phase = .ready
        guard let plan else { return [] }
        runnable.insert(plan)
        defer { dropHeldForwards() }
        return heldForwards.map { .run($0) }
    }

    /// The assignment could not be carried out (the coordinator has been told why).
    package mutating func assignmentFailed() {
        phase = .idle
        dropHeldForwards()
    }

    private mutating func dropHeldForwards() {
        heldForwards.removeAll()
        held = (0, 0)
    }

    private func requestID(of message: WireMessage) -> UInt64 {
        if case let .forward(a) = message { return a.requestID }
        return 0
    }
}
