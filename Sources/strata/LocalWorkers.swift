import Foundation
import Logging
import StrataCoordinator
import StrataModel
import Synchronization
import ZeroMQ

/// Worker processes of this same binary on this machine, for `strata local` and
/// `strata bench --workers`: started on free loopback ports, restarted on the same port when
/// one dies (not when it exits 0, as told to), stopped and reaped at the end.
final class LocalWorkers: @unchecked Sendable {
    private(set) var endpoints: [String] = []
    /// The coordinator's side of the links: CurveZMQ with a key pair made for this run, unless
    /// `insecure`; and each worker's public key, by endpoint.
    let security: LinkSecurity
    private(set) var workerKeys: [String: [UInt8]] = [:]
    /// The workers' secret key files (a private directory, removed at `stop`), one per worker,
    /// kept for its restarts; nil with `insecure`.
    private let keyDirectory: String?
    private let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    private let arguments: [String]
    private let verbose: Bool
    private let logger = Logger(label: "strata.local")

    private struct State {
        var processes: [Process] = []
        var stopping = false
        /// Deaths of each worker in a row (each within 10 s of its start), for the
        /// back-off between restarts, and when each was last started.
        var restarts: [Int] = []
        var started: [ContinuousClock.Instant] = []
    }
    private let state = Mutex(State())

    /// Starts `count` workers and waits until each has bound its port. Their links are
    /// encrypted with keys made for this run (each worker's and the coordinator's), unless
    /// `insecure`.
    init(count: Int, model: String, threads: Int, precision: Precision, verbose: Bool, insecure: Bool = false,
         extraArguments: [String] = []) throws {
        self.verbose = verbose
        var keyArguments = ["--insecure"]
        var workerKeyPairs: [CurveKeyPair] = []
        if insecure {
            security = .insecure
            keyDirectory = nil
        } else {
            let coordinator = try CurveKeyPair.generate()
            security = .curve(coordinator)
            var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("strata-local-keys.XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw LocalClusterError("cannot make a directory for the workers' keys: \(String(cString: strerror(errno)))") }
            let directory = String(cString: made)
            keyDirectory = directory
            for i in 0 ..< count {
                let pair = try CurveKeyPair.generate()
                try pair.write(to: (directory as NSString).appendingPathComponent("worker-\(i)"))
                workerKeyPairs.append(pair)
            }
            keyArguments = ["--coordinator-key=" + coordinator.publicText]  // (a Z85 key may begin with "-")
        }
        arguments = ["--model", model, "--threads", "\(threads)", "--precision", precision.rawValue, "--exit-with-parent",
                     "--shared-cores"] + keyArguments + extraArguments
        do {
            for i in 0 ..< count {
                let (p, endpoint) = try start(worker: i, listen: "tcp://127.0.0.1:*")
                endpoints.append(endpoint)
                if i < workerKeyPairs.count { workerKeys[endpoint] = workerKeyPairs[i].publicKey }
                state.withLock { $0.processes.append(p); $0.restarts.append(0); $0.started.append(.now) }
            }
        } catch {
            stop()
            throw error
        }
    }

    /// Starts worker `i`, and once it listens, watches it: should it exit before `stop`, it is
    /// started again on its endpoint.
    private func start(worker i: Int, listen: String) throws -> (Process, String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["worker", "--listen", listen, "--name", "worker-\(i)"] + arguments
            + (keyDirectory.map { ["--key", ($0 as NSString).appendingPathComponent("worker-\(i).key")] } ?? [])
        let out = Pipe()
        p.standardOutput = out
        // Quiet workers' logs are dropped, but the last of them name why one did not start.
        let errors = verbose ? nil : OutputTail()
        p.standardError = errors?.pipe ?? FileHandle.standardError
        p.standardInput = FileHandle.nullDevice
        try p.run()
        errors?.start()
        let endpoint: String
        do { endpoint = try Self.readEndpoint(out, worker: i, process: p) } catch {
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            guard let said = errors?.text(waitingUpTo: .seconds(2)), !said.isEmpty else { throw error }
            throw LocalClusterError("\(error): \(said)")
        }
        p.terminationHandler = { [weak self] p in self?.exited(worker: i, endpoint: endpoint, process: p) }
        return (p, endpoint)
    }

    private func exited(worker i: Int, endpoint: String, process: Process) {
        // Status 0 is a worker that was told to stop (the coordinator's shutdown, which may
        // come just before `stop`): only one that died is started again.
        if process.terminationReason == .exit && process.terminationStatus == 0 { return }
        let restarts = state.withLock { s -> Int? in
            guard !s.stopping else { return nil }
            // A worker that ran 10 s or more starts again at once.
            s.restarts[i] = ContinuousClock.now - s.started[i] < .seconds(10) ? s.restarts[i] + 1 : 1
            return s.restarts[i]
        }
        guard let restarts else { return }
        let how = process.terminationReason == .uncaughtSignal ? "signal \(process.terminationStatus)" : "status \(process.terminationStatus)"
        // At once the first time; a worker that keeps dying soon after it starts waits longer
        // each time, up to 30 s.
        let delay = min(30.0, restarts > 1 ? pow(2, Double(restarts - 2)) * 0.5 : 0)
        logger.notice("worker-\(i) exited (\(how)); starting it again on \(endpoint)\(delay > 0 ? String(format: " in %.1f s", delay) : "")")
        Thread.detachNewThread { [self] in
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            guard !state.withLock({ $0.stopping }) else { return }
            do {
                let (p, _) = try start(worker: i, listen: endpoint)
                let keep = state.withLock { s in
                    if !s.stopping { s.processes[i] = p; s.started[i] = .now }
                    return !s.stopping
                }
                if !keep { p.terminate() }
            } catch {
                logger.error("worker-\(i) could not be started again: \(error)")
            }
        }
    }

    /// The first line a worker prints on stdout: "strata worker listening on tcp://127.0.0.1:PORT".
    private static func readEndpoint(_ pipe: Pipe, worker: Int, process: Process) throws -> String {
        let line = LineReader(pipe.fileHandleForReading)
        guard let text = line.firstLine(timeout: .seconds(60)), let range = text.range(of: "listening on ") else {
            throw LocalClusterError("worker \(worker) did not start" + (process.isRunning ? " within 60 s" : " (exit status \(process.terminationStatus))"))
        }
        return String(text[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A coordinator's settings for these workers: their endpoints and keys, and `options`.
    func settings(_ options: ClusterOptions, model: ModelOptions) throws -> ClusterSettings {
        var s = try options.settings(model: model, workers: endpoints, security: security, sharedCores: true)
        s.workerKeys = workerKeys
        return s
    }

    /// The workers' process IDs, in order.
    var processIdentifiers: [Int32] { state.withLock { $0.processes.map(\.processIdentifier) } }

    /// Asks every worker still running to stop (SIGTERM: a worker shuts down gracefully on
    /// it), waits up to `grace`, kills what is left and reaps them all. None is restarted.
    func stop(grace: Duration = .seconds(5)) {
        let processes = state.withLock { s in
            s.stopping = true
            defer { s.processes = [] }
            return s.processes
        }
        for p in processes where p.isRunning { p.terminate() }
        let killAt = ContinuousClock.now + grace
        for p in processes {
            while p.isRunning && ContinuousClock.now < killAt { usleep(5_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        if let keyDirectory { try? FileManager.default.removeItem(atPath: keyDirectory) }
    }

    deinit { stop(grace: .zero) }
}

struct LocalClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the first line a child prints, with a deadline.
/// The last 4 KiB a process writes to a pipe, read until it closes.
private final class OutputTail: Sendable {
    let pipe = Pipe()
    private let tail = Mutex<[UInt8]>([])
    private let closed = DispatchSemaphore(value: 0)

    /// Reads on a thread of its own (call once the process runs).
    func start() {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while case let chunk = handle.availableData, !chunk.isEmpty {
                tail.withLock { t in
                    t += chunk
                    if t.count > 4096 { t.removeFirst(t.count - 4096) }
                }
            }
            closed.signal()
        }
    }

    /// What was written, once the pipe closes or `limit` passes.
    func text(waitingUpTo limit: Duration) -> String {
        _ = closed.wait(timeout: .now() + Double(limit.components.seconds))
        return String(decoding: tail.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

private final class LineReader: @unchecked Sendable {
    private let handle: FileHandle
    private var buffer = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) { self.handle = handle }

    func firstLine(timeout: Duration) -> String? {
        let t = Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                if buffer.contains(UInt8(ascii: "\n")) { break }
            }
            done.signal()
        }
        t.start()
        let seconds = Double(timeout.components.seconds)
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        return String(decoding: buffer[..<newline], as: UTF8.self)
    }
}
