import Foundation
import ZeroMQ

/// A child process whose output is collected in the background, so a full pipe never blocks it,
/// and which is killed when dropped: no test leaves a process running.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    /// What the child printed. The reader threads hold this, not the `ChildProcess`, so
    /// dropping the `ChildProcess` still kills the child.
    private final class Output: @unchecked Sendable {
        let lock = NSLock()
        var out = Data()
        var err = Data()
        let drained = DispatchGroup()
    }
    private let output = Output()

    /// Starts `executable` with `arguments`; `input`, when given, is its standard input.
    public init(_ executable: URL, _ arguments: [String], input: String? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe = input.map { _ in Pipe() }
        process.standardInput = inPipe ?? FileHandle.nullDevice
        try process.run()
        if let inPipe, let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try inPipe.fileHandleForWriting.close()
        }
        let output = output
        Self.collect(outPipe.fileHandleForReading, output) { output.out.append($0) }
        Self.collect(errPipe.fileHandleForReading, output) { output.err.append($0) }
    }

    /// `strata ARGS`, optionally inside network namespace `netns`, or inside `cgroup` (a shell
    /// moves itself in, writing `$BASHPID`, then becomes strata).
    public static func strata(_ arguments: [String], netns: String? = nil, cgroup: (any ProcessCgroup)? = nil,
                              input: String? = nil) throws -> ChildProcess {
        if let cgroup {
            return try ChildProcess(URL(fileURLWithPath: "/bin/bash"),
                                    ["-c", "echo $BASHPID > \"$0\" && exec \"$@\"", cgroup.procsFile, TestPaths.binary.path] + arguments,
                                    input: input)
        }
        if let netns {
            return try ChildProcess(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "exec", netns, TestPaths.binary.path] + arguments,
                                    input: input)
        }
        return try ChildProcess(TestPaths.binary, arguments, input: input)
    }

    private static func collect(_ handle: FileHandle, _ output: Output, _ append: @escaping @Sendable (Data) -> Void) {
        output.drained.enter()
        let t = Thread {
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                output.lock.withLock { append(chunk) }
            }
            output.drained.leave()
        }
        t.start()
    }

    public var stdout: String { output.lock.withLock { String(decoding: output.out, as: UTF8.self) } }
    public var stderr: String { output.lock.withLock { String(decoding: output.err, as: UTF8.self) } }

    /// Polls `condition` until it holds or `timeout` passes.
    @discardableResult
    public static func poll(timeout: Duration, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(2_000)
        }
        return condition()
    }

    /// Polls `condition` until it holds or `timeout` passes, sleeping without holding a thread
    /// (for async tests: the blocking `poll` would keep a thread of the shared pool from others).
    @discardableResult
    public static func poll(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// Waits for the process to exit; kills it at the deadline. Returns the exit status, or nil
    /// when it had to be killed.
    @discardableResult
    public func wait(timeout: Duration) -> Int32? {
        if !Self.poll(timeout: timeout, { !process.isRunning }) {
            kill()
            return nil
        }
        process.waitUntilExit()
        _ = output.drained.wait(timeout: .now() + 5)
        return process.terminationStatus
    }

    public func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    public var isRunning: Bool { process.isRunning }

    deinit { kill() }
}

/// A `strata worker` process, started and waited for until it is listening.
public final class WorkerProcess: @unchecked Sendable {
    public let child: ChildProcess
    public let endpoint: String
    /// Its CurveZMQ keys; nil when it runs `--insecure`.
    public let keys: CurveKeyPair?

    /// Starts `strata worker --listen LISTEN ARGS…`; throws with the worker's stderr when it
    /// does not come up within 60 s.
    ///
    /// Unless `arguments` say `--insecure` or give a `--key`, it is a worker of the tests'
    /// coordinator (``TestKeys/coordinator``) with `keys`, else those of the worker last on
    /// `listen`, else new ones.
    public init(listen: String = "tcp://127.0.0.1:*", netns: String? = nil, cgroup: (any ProcessCgroup)? = nil,
                keys given: (keys: CurveKeyPair, file: String)? = nil, _ arguments: [String]) throws {
        let keyed = !arguments.contains("--insecure") && !arguments.contains("--key")
        let keys = keyed ? try given ?? TestKeys.worker(at: listen) ?? TestKeys.makeWorkerKeys() : nil
        let keyArguments = keys.map { ["--key", $0.file] + (arguments.contains { $0.hasPrefix("--coordinator-key") } ? [] : ["--coordinator-key=" + TestKeys.coordinator.publicText]) } ?? []
        // --exit-with-parent: should this test process die, its workers go too.
        let child = try ChildProcess.strata(["worker", "--listen", listen, "--threads", "1", "--exit-with-parent"] + keyArguments + arguments,
                                            netns: netns, cgroup: cgroup)
        self.child = child
        var endpoint: String?
        ChildProcess.poll(timeout: .seconds(60)) {
            if let r = child.stdout.range(of: "listening on ") {
                let rest = child.stdout[r.upperBound...]
                if let nl = rest.firstIndex(of: "\n") { endpoint = String(rest[..<nl]) }
            }
            return endpoint != nil || !child.isRunning
        }
        guard let endpoint else {
            child.kill()
            throw WorkerStartError(stderr: child.stderr)
        }
        self.endpoint = endpoint
        self.keys = keys?.keys
        if let keys { TestKeys.remember(keys, at: endpoint) }
    }

    public func kill() { child.kill() }
}

public struct WorkerStartError: Error, CustomStringConvertible {
    public let stderr: String
    public var description: String { "worker did not start: \(stderr)" }
}
