import Foundation
import Testing
import ZeroMQ

@Suite struct MessagingTests {
    @Test func dealerRouterRoundTripKeepsEveryFrameWhole() throws {
        let context = try ZMQContext()
        let (dealer, router, _) = try dealerRouter(context)
        let sizes = [0, 1, 8 << 10, 4 << 20, 20 << 20]
        let frames = sizes.enumerated().map { patternBytes($1, seed: UInt64($0 + 1)) }
        try #require(try dealer.send(frames))

        let request = try #require(try receive(router))
        // ROUTER prefixes the sender's routing id.
        #expect(request.count == frames.count + 1)
        #expect(!request[0].isEmpty)
        for (got, sent) in zip(request.dropFirst(), frames) {
            #expect(got.count == sent.count)
            #expect(sameBytes(got, sent))
        }

        // Answer by identity: the ROUTER strips it and the DEALER sees the frames alone.
        let reply = [request[0]] + frames.reversed()
        try #require(try router.send(reply))
        let answer = try #require(try receive(dealer))
        #expect(answer.count == frames.count)
        for (got, sent) in zip(answer, frames.reversed()) {
            #expect(sameBytes(got, sent))
        }
    }

    @Test func routerSeesTheRoutingIDTheDealerSet() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setRoutingID(Array("worker-7".utf8))
        try dealer.connect(try router.lastEndpoint())
        try dealer.send(Array("hello".utf8))
        let message = try #require(try receive(router))
        #expect(message == [Array("worker-7".utf8), Array("hello".utf8)])

        try router.send([Array("worker-7".utf8), [], [42]])
        #expect(try receive(dealer) == [[], [42]])
    }

    @Test func oversizedMessageIsDroppedWhileASmallerOneOnANewConnectionArrives() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setMaxMessageSize(1024)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint()

        let big = try ZMQSocket(context, type: .dealer)
        try big.connect(endpoint)
        try big.send(patternBytes(4096, seed: 9))
        #expect(try receive(router, within: 300) == nil)
        big.close()

        let small = try ZMQSocket(context, type: .dealer)
        try small.setRoutingID([0x73])
        try small.connect(endpoint)
        let payload = patternBytes(512, seed: 10)
        try small.send(payload)
        let message = try #require(try receive(router))
        #expect(message == [[0x73], payload])
    }

    @Test func pollReportsReadableAndTimesOutWithinItsTimeout() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind("inproc://poll")
        let push = try ZMQSocket(context, type: .push)
        try push.connect("inproc://poll")

        #expect(try ZMQ.poll([(pull, .readable)], timeoutMilliseconds: 0) == [[]])
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try ZMQ.poll([(pull, .readable)], timeoutMilliseconds: 100) == [[]])
        let waited = start.duration(to: clock.now)
        #expect(waited >= .milliseconds(90) && waited < .seconds(2), "waited \(waited)")
        // A connected PUSH with room in its pipe is writable; the PULL never is.
        #expect(try ZMQ.poll([(push, [.readable, .writable]), (pull, .writable)], timeoutMilliseconds: 0) == [.writable, []])

        try push.send([1, 2, 3])
        #expect(try ZMQ.poll([(push, .readable), (pull, .readable)], timeoutMilliseconds: 5000) == [[], .readable])
        #expect(try pull.receive(dontWait: true) == [[1, 2, 3]])
    }

    @Test func receiveReturnsNilWhenNothingIsThere() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind(ipcEndpoint())
        #expect(try pull.receive(dontWait: true) == nil)

        try pull.setReceiveTimeout(milliseconds: 50)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try pull.receive() == nil)
        #expect(start.duration(to: clock.now) >= .milliseconds(40))
    }

    @Test func sendWithoutRoomReturnsFalseOrThrowsOnTimeout() throws {
        let context = try ZMQContext()
        // A PUSH with no peer has nowhere to queue.
        let push = try ZMQSocket(context, type: .push)
        try push.bind("tcp://127.0.0.1:*")
        #expect(try push.send([[1], [2]], dontWait: true) == false)
        try push.setSendTimeout(milliseconds: 20)
        let error = zmqError { try push.send([1]) }
        #expect(error?.code == EAGAIN)
        #expect(error?.operation == "send")
        #expect(zmqError { try push.send([] as [[UInt8]]) }?.code == EINVAL)
    }

    @Test func ipcAndPublishSubscribeWork() throws {
        let context = try ZMQContext()
        let endpoint = ipcEndpoint()
        let publisher = try ZMQSocket(context, type: .publisher)
        try publisher.bind(endpoint)
        #expect(try publisher.lastEndpoint() == endpoint)
        let subscriber = try ZMQSocket(context, type: .subscriber)
        try subscriber.subscribe(Array("tok".utf8))
        try subscriber.connect(endpoint)

        // A subscription reaches the publisher asynchronously, and PUB drops what nobody
        // subscribed to yet: publish until the first copy arrives, within a deadline.
        let deadline = ContinuousClock.now + .seconds(5)
        var first: [[UInt8]]?
        while first == nil && ContinuousClock.now < deadline {
            try publisher.send([Array("other".utf8)])
            try publisher.send([Array("tok".utf8), [7]])
            first = try receive(subscriber, within: 20)
        }
        #expect(first == [Array("tok".utf8), [7]])
    }

    @Test func aFinalMessageQueuedBeforeCloseIsStillDelivered() throws {
        // Default linger: closing right after sending must not drop the message (linger 0 did).
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(try pull.lastEndpoint())
        try push.send(Array("last words".utf8))
        push.close()
        push.close()  // idempotent
        #expect(try receive(pull) == [Array("last words".utf8)])
    }
}
