import CZeroMQ
import Synchronization

/// A libzmq context: the I/O threads and the registry of sockets.
///
/// libzmq contexts are thread-safe, so one context may be shared freely. Sockets hold a strong
/// reference to their context: `zmq_ctx_term` (run in `deinit`) blocks until every socket of the
/// context is closed, and a context released while one of its sockets was still open was
/// measured to hang there. With the strong reference the context can only be deinitialised
/// after its last socket, which closes itself in its own `deinit`.
public final class ZMQContext: @unchecked Sendable {
    /// The `void *` from `zmq_ctx_new`; immutable, and libzmq's context calls are thread-safe.
    let handle: UnsafeMutableRawPointer
    private let terminated = Atomic<Bool>(false)

    /// Creates a context with `ioThreads` background I/O threads (0 is valid for inproc only).
    public init(ioThreads: Int = 1) throws(ZMQError) {
        guard let context = zmq_ctx_new() else { throw .last("zmq_ctx_new") }
        guard let threads = Int32(exactly: ioThreads) else {
            zmq_ctx_term(context)
            throw ZMQError(operation: "zmq_ctx_set ZMQ_IO_THREADS \(ioThreads)", code: EINVAL)
        }
        if zmq_ctx_set(context, ZMQ_IO_THREADS, threads) != 0 {
            let error = ZMQError.last("zmq_ctx_set ZMQ_IO_THREADS \(ioThreads)")
            // No socket exists yet, so this cannot block.
            zmq_ctx_term(context)
            throw error
        }
        handle = context
    }

    /// Shuts the context down (`zmq_ctx_shutdown`): blocking calls on its sockets in other
    /// threads return with an error whose ``ZMQError/isTerminated`` is true, later calls on them
    /// fail the same way, and no new socket can be created. The sockets still have to be closed
    /// (dropping them does it) before the context itself can go away. Calling it again is harmless.
    public func shutdown() {
        // The only documented failure is EFAULT for an invalid context, which `handle` never is.
        let rc = zmq_ctx_shutdown(handle)
        assert(rc == 0, "zmq_ctx_shutdown: \(ZMQError.last("zmq_ctx_shutdown"))")
    }

    /// Terminates the context now (`zmq_ctx_term`), waiting until the messages its sockets
    /// still queue are sent or their linger runs out: call it after closing every socket of the
    /// context, when the last messages must leave before the process exits. Calling it again,
    /// and the `deinit` after it, do nothing.
    public func terminate() {
        guard !terminated.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // EINTR means a signal interrupted the wait.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit {
        // Every socket is closed by now (each held this context), so this waits at most for the
        // sockets' linger to flush their last messages.
        terminate()
    }
}
