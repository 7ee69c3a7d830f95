import Foundation
import StrataModel

/// Worker processes of this same binary on this machine, for `strata local` and
/// `strata bench --workers`: started on free loopback ports, stopped (and reaped) at the end.
final class LocalWorkers {
    private(set) var processes: [Process] = []
    private(set) var endpoints: [String] = []

    /// Starts `count` workers and waits until each has bound its port.
    init(count: Int, model: String, threads: Int, precision: Precision, verbose: Bool, extraArguments: [String] = []) throws {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        do {
            for i in 0 ..< count {
                let p = Process()
                p.executableURL = binary
                p.arguments = ["worker", "--listen", "tcp://127.0.0.1:*", "--model", model, "--threads", "\(threads)",
                               "--precision", precision.rawValue, "--name", "worker-\(i)", "--exit-with-parent", "--shared-cores"] + extraArguments
                let out = Pipe()
                p.standardOutput = out
                p.standardError = verbose ? FileHandle.standardError : FileHandle.nullDevice
                p.standardInput = FileHandle.nullDevice
                try p.run()
                processes.append(p)
                endpoints.append(try Self.readEndpoint(out, worker: i, process: p))
            }
        } catch {
            stop()
            throw error
        }
    }

    /// The worker's first line on stdout: "strata worker listening on tcp://127.0.0.1:PORT".
    private static func readEndpoint(_ pipe: Pipe, worker: Int, process: Process) throws -> String {
        let line = LineReader(pipe.fileHandleForReading)
        guard let text = line.firstLine(timeout: .seconds(60)), let range = text.range(of: "listening on ") else {
            throw LocalClusterError("worker \(worker) did not start" + (process.isRunning ? " within 60 s" : " (exit status \(process.terminationStatus))"))
        }
        return String(text[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Asks every worker still running to stop (SIGTERM: a worker shuts down gracefully on
    /// it), waits up to `grace`, kills what is left and reaps them all.
    func stop(grace: Duration = .seconds(5)) {
        for p in processes where p.isRunning { p.terminate() }
        let killAt = ContinuousClock.now + grace
        for p in processes {
            while p.isRunning && ContinuousClock.now < killAt { usleep(5_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        processes = []
    }

    deinit { stop(grace: .zero) }
}

struct LocalClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the first line a child prints, with a deadline.
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
