import Foundation
import Testing
import ZeroMQ

@Suite struct ErrorTests {
    @Test(arguments: ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:3abc", "tcp://127.0.0.1:", "garbage", "nosuch://here", "tcp://"])
    func badEndpointsThrowZMQErrorsNamingThem(endpoint: String) throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .router)
        let error = try #require(zmqError { try socket.bind(endpoint) })
        #expect(error.operation == "bind \(endpoint)")
        #expect(error.message == systemMessage(error.code))
        #expect(error.description == "bind \(endpoint): \(error.message)")
        #expect(!error.isTerminated)
    }

    @Test func portOutOfRangeIsInvalidArgument() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .pull)
        let error = try #require(zmqError { try socket.bind("tcp://127.0.0.1:99999") })
        #expect(error.code == EINVAL)
        #expect(error.message == "Invalid argument")
        #expect(error.description.contains("tcp://127.0.0.1:99999"))
        #expect(zmqError { try socket.connect("garbage") }?.operation == "connect garbage")
        // libzmq alone would take these as ports 34463 and 3.
        #expect(zmqError { try socket.connect("tcp://127.0.0.1:99999") }?.code == EINVAL)
        #expect(zmqError { try socket.connect("tcp://[::1]:70000") }?.code == EINVAL)
        #expect(zmqError { try socket.unbind("tcp://127.0.0.1:3abc") }?.code == EINVAL)
        #expect(zmqError { try socket.disconnect("tcp://127.0.0.1:-1") }?.code == EINVAL)
        // Well-formed ones still pass, IPv6 included.
        try socket.connect("tcp://[::1]:65535")
        try socket.connect("tcp://127.0.0.1:1")
    }

    @Test func bindingAPortTwiceIsAddressInUse() throws {
        let context = try ZMQContext()
        let first = try ZMQSocket(context, type: .router)
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = try first.lastEndpoint()
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        let second = try ZMQSocket(context, type: .router)
        let error = try #require(zmqError { try second.bind(endpoint) })
        #expect(error.code == EADDRINUSE)
        #expect(error.message == systemMessage(EADDRINUSE))
        #expect(error.description == "bind \(endpoint): \(error.message)")

        // Unbinding takes the resolved endpoint; a second unbind finds nothing. (libzmq closes
        // the listener on its I/O thread: rebinding at once was measured to race it.)
        try first.unbind(endpoint)
        #expect(zmqError { try first.unbind(endpoint) }?.code == ENOENT)
    }

    @Test func routerMandatorySendToAnUnknownIDThrowsHostUnreachable() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.bind("tcp://127.0.0.1:*")
        // Without the option the message is dropped silently.
        #expect(try router.send([[9, 9, 9], [1]]))
        try router.setRouterMandatory(true)
        let error = try #require(zmqError { try router.send([[9, 9, 9], [1]]) })
        #expect(error.code == EHOSTUNREACH)
        #expect(error.operation == "send")
        // zmq_strerror has its own text for this one (the C library says "No route to host").
        #expect(error.message == "Host unreachable")
    }

    @Test func aClosedSocketThrowsNotASocket() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer)
        socket.close()
        socket.close()
        #expect(zmqError { try socket.bind("inproc://closed") }?.code == ENOTSOCK)
        #expect(zmqError { try socket.send([1]) }?.code == ENOTSOCK)
        #expect(zmqError { _ = try socket.receive(dontWait: true) }?.code == ENOTSOCK)
        #expect(zmqError { _ = try ZMQ.poll([(socket, .readable)], timeoutMilliseconds: 0) }?.code == ENOTSOCK)
        #expect(zmqError { try socket.setLinger(milliseconds: 0) }?.operation == "setsockopt ZMQ_LINGER")
    }

    @Test func refusedOptionsThrow() throws {
        let context = try ZMQContext()
        let dealer = try ZMQSocket(context, type: .dealer)
        // Routing ids are 1…255 bytes and may not start with 0.
        #expect(zmqError { try dealer.setRoutingID([]) }?.code == EINVAL)
        #expect(zmqError { try dealer.setRoutingID([0, 1]) }?.code == EINVAL)
        #expect(zmqError { try dealer.setRoutingID([UInt8](repeating: 1, count: 256)) }?.code == EINVAL)
        // Values that do not fit libzmq's int, and ones libzmq refuses.
        #expect(zmqError { try dealer.setSendHighWaterMark(Int(Int32.max) + 1) }?.code == EINVAL)
        #expect(zmqError { try dealer.setSendHighWaterMark(-1) }?.code == EINVAL)
        #expect(zmqError { try dealer.setLinger(milliseconds: -2) }?.code == EINVAL)
        // ROUTER_MANDATORY exists for ROUTER sockets only.
        #expect(zmqError { try dealer.setRouterMandatory(true) }?.operation == "setsockopt ZMQ_ROUTER_MANDATORY")
        // CURVE keys are 32 raw bytes here, never Z85 text.
        let z85Text = Array(String(repeating: "0", count: 40).utf8)
        #expect(zmqError { try dealer.setCurveServer(secretKey: z85Text) }?.code == EINVAL)
        #expect(zmqError { try dealer.setCurveClient(serverPublicKey: [1], publicKey: [], secretKey: []) }?.code == EINVAL)
        #expect(zmqError { _ = try ZMQContext(ioThreads: -1) }?.code == EINVAL)
    }

    @Test func everyOptionIsAccepted() throws {
        let context = try ZMQContext(ioThreads: 2)
        let socket = try ZMQSocket(context, type: .router)
        try socket.setLinger(milliseconds: 0)
        try socket.setSendHighWaterMark(10)
        try socket.setReceiveHighWaterMark(10)
        try socket.setRoutingID([1, 2, 3])
        try socket.setMaxMessageSize(1 << 30)
        try socket.setRouterMandatory(true)
        try socket.setImmediate(true)
        try socket.setSendTimeout(milliseconds: 100)
        try socket.setReceiveTimeout(milliseconds: 100)
        try socket.setReconnectInterval(milliseconds: 100, max: 2000)
        try socket.setHeartbeat(interval: 1000, timeout: 3000, ttl: 5000)
        try socket.setTCPKeepalive(true)
        try socket.setTCPKeepalive(false)
        let subscriber = try ZMQSocket(context, type: .subscriber)
        try subscriber.subscribe([])
        try subscriber.subscribe([1, 2])
    }

    @Test func versionAndErrorValues() {
        #expect(ZMQ.version.major == 4)
        let error = ZMQError(operation: "send", code: EAGAIN)
        #expect(error == ZMQError(operation: "send", code: EAGAIN))
        #expect(error != ZMQError(operation: "receive", code: EAGAIN))
        #expect(error.description == "send: \(systemMessage(EAGAIN))")
    }
}
