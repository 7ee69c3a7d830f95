import StrataModel
import StrataWire

/// What went wrong in the cluster, named so that the user can act on it.
public enum ClusterError: Error, CustomStringConvertible {
    case noWorkers
    case model(String)
    case unreachable(endpoint: String, seconds: Int)
    /// The encrypted handshake with a worker failed: `why` says which side refused what.
    case handshakeFailed(endpoint: String, why: String)
    /// Links are encrypted, but no key was given for this worker.
    case noWorkerKey(endpoint: String)
    case protocolMismatch(endpoint: String, message: String)
    case refused(endpoint: String, message: String)
    case partition(PartitionError)
    /// A stage's layers, with the KV cache of one sequence at full context, are more than its
    /// worker offers.
    case doesNotFit(endpoint: String, layers: Range<Int>, needs: UInt64, offers: UInt64, context: Int)
    /// A request needs more KV cache than a stage has in all.
    case kvCacheTooSmall(positions: Int, endpoint: String, holds: Int)
    case loadTimeout(endpoint: String, seconds: Int)
    case workerLost(endpoint: String, stage: Int, layers: Range<Int>, reason: String)
    /// Every worker is lost (or refused its stage).
    case noWorkersLeft(reason: String)
    case stageFailed(endpoint: String, message: String)
    case generation(GenerationError)
    /// Every slot is running and the line is full.
    case busy(running: Int, waiting: Int)
    /// The caller cancelled the request before it started.
    case cancelled
    case shutDown

    public var description: String {
        switch self {
        case .noWorkers: "no workers given (--workers tcp://HOST:PORT,…)"
        case let .model(m): m
        case let .unreachable(e, s):
            "worker \(e) did not answer within \(s) s: is `strata worker --listen …` running there, and is the address reachable from here?"
        case let .handshakeFailed(e, why): "the encrypted handshake with worker \(e) failed: \(why)"
        case let .noWorkerKey(e):
            "no CurveZMQ key for worker \(e): give its public key with the endpoint, as \(e)=KEY (its .pub file or the key), or run both sides with --insecure"
        case let .protocolMismatch(e, m): "worker \(e) speaks another protocol version: \(m)"
        case let .refused(e, m): "worker \(e) refused: \(m)"
        case let .partition(p): p.description
        case let .doesNotFit(e, l, n, o, ctx):
            "layers \(l.lowerBound)-\(l.upperBound - 1) need \(formatBytes(n)) (weights, and the KV cache of one sequence of \(ctx) tokens), " +
            "but worker \(e) offers \(formatBytes(o)) (its --max-memory, or what its cgroup and machine allow): " +
            "lower --context, use --partition memory, or add workers"
        case let .kvCacheTooSmall(positions, e, holds):
            "the request needs KV cache for \(positions) positions (prompt and max_tokens), but worker \(e) holds \(holds) in all: " +
            "ask for fewer tokens, or give the workers more memory"
        case let .loadTimeout(e, s): "worker \(e) did not finish loading within \(s) s"
        case let .workerLost(e, stage, layers, reason):
            "worker \(e) (stage \(stage), layers \(layers.lowerBound)-\(layers.upperBound - 1)) was lost: \(reason)"
        case let .noWorkersLeft(reason): "no worker is left to run the model (\(reason)); waiting for one to come back"
        case let .stageFailed(e, m): "worker \(e) failed: \(m)"
        case let .generation(g): g.description
        case let .busy(running, waiting):
            "the cluster is busy: \(running) requests are running and \(waiting) are waiting, the most it takes (--max-sequences, --max-waiting); try again shortly"
        case .cancelled: "the request was cancelled"
        case .shutDown: "the coordinator is shutting down"
        }
    }
}

/// Whether the cluster serves now, and if not, why (for /health).
public enum ClusterHealth: Sendable {
    case serving
    /// A worker was lost or joined: a new plan is loading, and requests wait in line for it.
    case recovering(String)
    /// No plan fits the workers there are: requests fail with this until one joins.
    case unavailable(ClusterError)
    /// Stopped for good.
    case failed(ClusterError)
}
