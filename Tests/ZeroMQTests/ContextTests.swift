import Foundation
import Synchronization
import Testing
import ZeroMQ

@Suite struct ContextTests {
    @Test func shutdownWakesAThreadBlockedInReceive() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .pull)
        try socket.bind("inproc://blocked")
        let started = DispatchSemaphore(value: 0)
        let outcome = Mutex<ZMQError?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Thread {
            started.signal()
            do {
                _ = try socket.receive()
            } catch {
                outcome.withLock { $0 = error as? ZMQError }
            }
            // The socket was handed to this thread; it closes it here, as a worker would.
            socket.close()
            finished.signal()
        }.start()
        started.wait()
        // Whether the shutdown lands before or during the blocking receive, the answer is ETERM.
        context.shutdown()
        try #require(finished.wait(timeout: .now() + 5) == .success, "receive did not wake")
        let error = try #require(outcome.withLock { $0 })
        #expect(error.isTerminated)
        #expect(error.operation == "receive")
        #expect(error.message == "Context was terminated")
        // Everything on a shut-down context now fails the same way.
        #expect(zmqError { _ = try ZMQSocket(context, type: .push) }?.isTerminated == true)
    }

    @Test func droppingSocketsThenContextNeverHangs() {
        // Each scenario builds, uses and drops its own context on a thread; zmq_ctx_term in the
        // context's deinit must return, within the sockets' 1 s default linger.
        let scenarios: [@Sendable () throws -> Void] = [
            {
                // A DEALER with a message queued for a peer that never listens.
                let context = try ZMQContext()
                let dealer = try ZMQSocket(context, type: .dealer)
                try dealer.connect("tcp://127.0.0.1:1")
                try dealer.send([1, 2, 3])
                _ = dealer
            },
            {
                // Sockets dropped after the context was shut down, one mid-conversation.
                let context = try ZMQContext()
                let (dealer, router, _) = try dealerRouter(context)
                try dealer.send([[1], [2]])
                _ = try receive(router)
                try router.send([[9], [9]])  // unknown id: dropped
                context.shutdown()
            },
            {
                // Sockets closed explicitly, the context dropped first by this scope.
                var sockets: [ZMQSocket] = []
                do {
                    let context = try ZMQContext()
                    sockets.append(try ZMQSocket(context, type: .pair))
                    sockets.append(try ZMQSocket(context, type: .request))
                    try sockets[1].connect("inproc://nowhere")
                }
                sockets.forEach { $0.close() }
                sockets.removeAll()
            },
        ]
        for (index, scenario) in scenarios.enumerated() {
            let outcome = onThread(within: 5) { () -> String? in
                do { try scenario(); return nil } catch { return "\(error)" }
            }
            #expect(outcome != nil, "scenario \(index) hung")
            #expect(outcome == .some(nil), "scenario \(index) failed: \(String(describing: outcome))")
        }
    }
}
