import Testing
import ZeroMQ

@Suite struct CurveTests {
    @Test func encryptedDealerRouterRoundTrip() throws {
        try #require(ZMQ.hasCurve)
        let server = try ZMQ.curveKeyPair()
        let client = try ZMQ.curveKeyPair()
        #expect(server.publicKey.count == 32 && server.secretKey.count == 32)
        #expect(server.publicKey != client.publicKey && server.publicKey != server.secretKey)

        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setCurveServer(secretKey: server.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setCurveClient(serverPublicKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey)
        try dealer.connect(try router.lastEndpoint())

        try dealer.send([Array("secret".utf8), patternBytes(100_000, seed: 3)])
        let request = try #require(try receive(router))
        #expect(request.count == 3)
        #expect(request[1] == Array("secret".utf8))
        #expect(sameBytes(request[2], patternBytes(100_000, seed: 3)))
        try router.send([request[0], Array("ok".utf8)])
        #expect(try receive(dealer) == [Array("ok".utf8)])
    }

    @Test func aClientWithTheWrongServerKeyGetsNoReply() throws {
        let server = try ZMQ.curveKeyPair()
        let impostor = try ZMQ.curveKeyPair()
        let client = try ZMQ.curveKeyPair()

        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setCurveServer(secretKey: server.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setCurveClient(serverPublicKey: impostor.publicKey, publicKey: client.publicKey, secretKey: client.secretKey)
        try dealer.connect(try router.lastEndpoint())
        try dealer.send(Array("hello?".utf8))

        // The handshake fails, so the message never reaches the server and nothing comes back.
        let ready = try ZMQ.poll([(router, .readable), (dealer, .readable)], timeoutMilliseconds: 500)
        #expect(ready == [[], []])
    }

    @Test func z85RoundTripsAndRejectsBadText() throws {
        // The example from the Z85 specification (ZeroMQ RFC 32).
        let hello: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(ZMQ.z85Encode(hello) == "HelloWorld")
        #expect(ZMQ.z85Decode("HelloWorld") == hello)

        let key = try ZMQ.curveKeyPair().publicKey
        let text = try #require(ZMQ.z85Encode(key))
        #expect(text.utf8.count == 40)
        #expect(ZMQ.z85Decode(text) == key)

        #expect(ZMQ.z85Encode([1, 2, 3]) == nil)
        #expect(ZMQ.z85Decode("HelloWorl") == nil)           // not a multiple of 5
        #expect(ZMQ.z85Decode("Hello~orld") == nil)          // '~' is not in the alphabet
        #expect(ZMQ.z85Decode("Hello\u{0}orld") == nil)      // embedded NUL
        #expect(ZMQ.z85Decode("Hellö") == nil)               // non-ASCII
        #expect(ZMQ.z85Decode("%%%%%") == nil)               // worth more than 32 bits
        #expect(ZMQ.z85Encode([]) == "" && ZMQ.z85Decode("") == [])
    }
}
