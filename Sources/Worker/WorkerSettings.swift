import Foundation
import StrataModel
import ZeroMQ

/// How a worker runs (`strata worker`).
public struct WorkerSettings: Sendable {
    public enum Default {
        public static let cacheDirectory: String = {
            let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
                ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
            return (base as NSString).appendingPathComponent("strata/stages")
        }()
    }

    /// Where the worker listens, e.g. "tcp://0.0.0.0:7000".
    public var listen: String
    /// A local copy of the model; without one the coordinator streams this stage's tensors.
    public var model: String?
    public var threads: Int
    /// Weights plus KV cache may not exceed this; 0 = what the system reports available.
    public var maxMemory: UInt64
    /// Where stage files streamed by a coordinator are kept for the next start.
    public var cacheDirectory: String
    public var precision: Precision
    /// A name for logs and `hello`; the listen address by default.
    public var name: String?
    /// Other stages run on this machine's cores (`strata local`): between batches the compute
    /// threads block at once instead of spinning, leaving the cores to them.
    public var sharedCores: Bool
    /// A coordinator's `--listen` address to announce this worker to.
    public var join: String?
    /// The endpoint announced with `join`; the bound address by default.
    public var advertise: String?
    /// CurveZMQ with the worker's key pair, or plain links.
    public var security: LinkSecurity
    /// With CurveZMQ: the keys of the coordinators this worker takes orders from (the first is
    /// the one `join` announces to). The one other key let in is the previous stage's, which
    /// the coordinator names in the assignment.
    public var coordinatorKeys: [[UInt8]]

    public init(listen: String, security: LinkSecurity, coordinatorKeys: [[UInt8]] = [], model: String? = nil, threads: Int = 2, maxMemory: UInt64 = 0,
                cacheDirectory: String = Default.cacheDirectory, precision: Precision = .fast, name: String? = nil,
                sharedCores: Bool = false, join: String? = nil, advertise: String? = nil) {
        self.listen = listen
        self.model = model
        self.threads = threads
        self.maxMemory = maxMemory
        self.cacheDirectory = cacheDirectory
        self.precision = precision
        self.name = name
        self.sharedCores = sharedCores
        self.join = join
        self.advertise = advertise
        self.security = security
        self.coordinatorKeys = coordinatorKeys
    }
}
