import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import StrataModel
import StrataWorker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve a range of decoder layers to a coordinator.",
        discussion: """
            Prints "strata worker listening on ENDPOINT" on stdout once bound. Without --model, the \
            coordinator streams this worker's layers to it; they are cached for the next start.
            """)

    @Option(help: "Where to listen, e.g. tcp://0.0.0.0:7000 (port * picks a free one).")
    var listen: String

    @Option(help: "A local copy of the model (GGUF). Without one the coordinator streams the layers.")
    var model: String?

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Memory for weights and KV cache, in bytes (suffixes K, M, G); default: what the system has available.")
    var maxMemory: String?

    @Option(help: "Where streamed layers are cached.")
    var cacheDir: String = WorkerSettings.Default.cacheDirectory

    @Option(help: "fast, q8 or f32 (see `strata generate --help`).")
    var precision: Precision = .fast

    @Option(help: "A name for logs (default: the listen address).")
    var name: String?

    @Option(help: "Announce this worker to a coordinator started with --listen, e.g. tcp://10.0.0.1:7100; it then takes it into its plan.")
    var join: String?

    @Option(help: "With --join: the endpoint the coordinator is to connect to (default: the listen address, with this host's name for 0.0.0.0).")
    var advertise: String?

    @OptionGroup var keys: KeyOptions

    @Option(help: ArgumentHelp("The coordinator's public key (its .pub file, or the key), or several, comma-separated: only they may assign this worker its stage.",
                               discussion: "Default: $STRATA_COORDINATOR_KEY, else $CREDENTIALS_DIRECTORY/coordinator.pub. With --join, the first is the coordinator announced to."))
    var coordinatorKey: String?

    @Flag(help: "Other stages share this machine's cores: block between batches instead of spinning (`strata local` sets it).")
    var sharedCores = false

    @Flag(help: .hidden)
    var exitWithParent = false

    @OptionGroup var logging: LogOptions

    func validate() throws {
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        if let maxMemory, parseBytes(maxMemory) == nil { throw ValidationError("--max-memory '\(maxMemory)': expected bytes, e.g. 512M or 8G") }
    }

    /// Serves until a coordinator says shutdown, SIGINT or SIGTERM (a graceful stop), or,
    /// with --exit-with-parent, until the parent process is gone.
    func run() async throws {
        let security = try keys.security()
        var coordinatorKeys: [[UInt8]] = []
        if security.keys != nil {
            guard let list = coordinatorKey ?? environment("STRATA_COORDINATOR_KEY") ?? credential("coordinator.pub") else {
                throw ValidationError("give --coordinator-key (the coordinator's .pub file or key): a worker with a key takes orders only from a coordinator it knows")
            }
            coordinatorKeys = try publicKeys(list, option: "--coordinator-key")
        } else if coordinatorKey != nil {
            throw ValidationError("--coordinator-key is for encrypted links; --insecure has none")
        }
        let settings = WorkerSettings(listen: listen, security: security, coordinatorKeys: coordinatorKeys, model: model, threads: threads, maxMemory: maxMemory.flatMap(parseBytes) ?? 0,
                                      cacheDirectory: cacheDir, precision: precision, name: name,
                                      sharedCores: sharedCores, join: join, advertise: advertise)
        logging.bootstrap()
        let server = try WorkerServer(settings: settings)
        writeOut("strata worker listening on \(server.endpoint)\n")
        if exitWithParent { watchParent { server.stop() } }
        let logger = Logger(label: "strata.worker")
        let group = ServiceGroup(configuration: .init(services: [.init(service: WorkerService(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// The worker's loop as a service: it runs on a thread of its own (it blocks in ZeroMQ and
/// computes), and a graceful shutdown stops it.
struct WorkerService: Service {
    let server: WorkerServer

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread { done.resume(with: Result { try server.run() }) }
                thread.name = "strata-worker"
                thread.stackSize = 4 << 20
                thread.start()
            }
        } onGracefulShutdown: {
            server.stop()
        }
    }
}

/// `--exit-with-parent`: when the process that started this one goes away, `stop` runs (tests
/// and `strata local` start their children so, and none outlives them).
func watchParent(stop: @escaping @Sendable () -> Void) {
    let parent = getppid()
    let t = Thread {
        while getppid() == parent { usleep(200_000) }
        stop()
    }
    t.start()
}

/// "512M", "8G", "1048576" → bytes.
func parseBytes(_ text: String) -> UInt64? {
    let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    var digits = text.uppercased()
    if digits.hasSuffix("IB") || digits.hasSuffix("B") && digits.count > 1 && units[digits.dropLast().last!] != nil {
        digits = String(digits.prefix { $0 != "I" && $0 != "B" })
    }
    var scale: UInt64 = 1
    if let last = digits.last, let unit = units[last] { scale = unit; digits.removeLast() }
    guard let value = Double(digits), value >= 0 else { return nil }
    return UInt64(value * Double(scale))
}
