import Foundation
import Testing
import ZeroMQ

@Suite struct ThreadTests {
    @Test func aSocketCreatedHereServesFromAnotherThread() throws {
        let context = try ZMQContext()
        let reply = try ZMQSocket(context, type: .reply)
        try reply.bind("tcp://127.0.0.1:*")
        let endpoint = try reply.lastEndpoint()
        let rounds = 50

        // The REP socket is handed to a Thread that answers each request with it doubled.
        let finished = DispatchSemaphore(value: 0)
        Thread {
            defer { finished.signal() }
            for _ in 0..<rounds {
                guard let request = try? receive(reply), let frame = request.first else { return }
                _ = try? reply.send([frame + frame])
            }
        }.start()

        let request = try ZMQSocket(context, type: .request)
        try request.connect(endpoint)
        for round in 0..<rounds {
            let payload = Array("round \(round)".utf8)
            try request.send(payload)
            #expect(try receive(request) == [payload + payload])
        }
        #expect(finished.wait(timeout: .now() + 5) == .success)
    }
}
