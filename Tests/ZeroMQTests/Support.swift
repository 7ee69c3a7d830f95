import Dispatch
import Foundation
import Synchronization
import Testing
import ZeroMQ

/// Shared helpers. Tests synchronise by polling with deadlines, never by sleeping; blocking
/// work that might hang runs on its own `Thread` (not a Task: a blocked libzmq call would hold
/// one of the two cooperative threads of this machine) and is waited for with a deadline.

/// Waits up to `milliseconds` for one whole message on `socket`; nil when none came.
func receive(_ socket: ZMQSocket, within milliseconds: Int = 5000) throws -> [[UInt8]]? {
    let ready = try ZMQ.poll([(socket, .readable)], timeoutMilliseconds: milliseconds)
    guard ready[0].contains(.readable) else { return nil }
    return try socket.receive(dontWait: true)
}

/// A DEALER connected to a ROUTER bound on an ephemeral TCP port of 127.0.0.1.
func dealerRouter(_ context: ZMQContext) throws -> (dealer: ZMQSocket, router: ZMQSocket, endpoint: String) {
    let router = try ZMQSocket(context, type: .router)
    try router.bind("tcp://127.0.0.1:*")
    let endpoint = try router.lastEndpoint()
    let dealer = try ZMQSocket(context, type: .dealer)
    try dealer.connect(endpoint)
    return (dealer, router, endpoint)
}

/// Deterministic pseudo-random bytes (xorshift64*), filled a word at a time so that 20 MiB
/// take little time even in a debug build.
func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let raw = UnsafeMutableRawBufferPointer(buffer)
        var index = 0
        while index < count {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            var word = (state &* 0x2545_F491_4F6C_DD1D).littleEndian
            let n = min(8, count - index)
            withUnsafeBytes(of: &word) { w in
                UnsafeMutableRawBufferPointer(rebasing: raw[index..<index + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: w[0..<n]))
            }
            index += n
        }
        initialized = count
    }
}

/// Byte equality through memcmp: Array's `==` walks elements one by one in a debug build.
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}

/// Runs `body` on a new thread and waits up to `seconds` for it; nil when it did not finish
/// in time (the thread is then left behind, stuck, and the test fails instead of hanging).
func onThread<T: Sendable>(within seconds: Double = 5, _ body: @escaping @Sendable () -> T) -> T? {
    let result = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        let value = body()
        result.withLock { $0 = value }
        done.signal()
    }
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return result.withLock { $0 }
}

/// Runs `body`, returning the ZMQError it threw (nil if it threw none; any other error is a
/// test failure). Closures are not inferred to throw a typed error, hence the cast.
func zmqError(_ body: () throws -> Void) -> ZMQError? {
    do {
        try body()
        return nil
    } catch let error as ZMQError {
        return error
    } catch {
        Issue.record("not a ZMQError: \(error)")
        return nil
    }
}

/// The C library's text for a system errno value: what zmq_strerror returns for those.
func systemMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

/// A fresh ipc endpoint under the temporary directory.
func ipcEndpoint() -> String {
    "ipc:///tmp/strata-zmq-test-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max)).sock"
}
