import Synchronization
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
        let (router, dealer) = try curveLink(context, server: server, client: client)

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
        let (router, dealer) = try curveLink(context, server: server, client: client, serverKey: impostor.publicKey)
        try dealer.send(Array("hello?".utf8))

        // The handshake fails, so the message never reaches the server and nothing comes back.
        let ready = try ZMQ.poll([(router, .readable), (dealer, .readable)], timeoutMilliseconds: 500)
        #expect(ready == [[], []])
    }

    /// A CURVE server with a ZAP allow-list: the trusted client's messages arrive with its key
    /// as their User-Id; an untrusted client, and a plain one, complete no handshake, so
    /// nothing of theirs arrives and nothing is answered; the list changes live.
    @Test func theAllowListDecidesWhoGetsIn() throws {
        let server = try ZMQ.curveKeyPair()
        let trusted = try ZMQ.curveKeyPair(), stranger = try ZMQ.curveKeyPair()
        let context = try ZMQContext()
        let refused = Mutex<[[UInt8]]>([])
        let zap = try ZAPHandler(context: context, grace: .milliseconds(200)) { _, key in refused.withLock { $0.append(key) } }
        defer { zap.stop() }
        zap.trust(trusted.publicKey, as: "friend")
        #expect(zap.name(of: trusted.publicKey) == "friend" && zap.name(of: stranger.publicKey) == nil)

        let router = try ZMQSocket(context, type: .router)
        try router.setCurveServer(secretKey: server.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint()
        func client(_ keys: (publicKey: [UInt8], secretKey: [UInt8])?) throws -> ZMQSocket {
            let dealer = try ZMQSocket(context, type: .dealer)
            if let keys { try dealer.setCurveClient(serverPublicKey: server.publicKey, publicKey: keys.publicKey, secretKey: keys.secretKey) }
            try dealer.connect(endpoint)
            return dealer
        }
        let friend = try client(trusted), other = try client(stranger), plain = try client(nil)
        try other.send(Array("from a stranger".utf8))
        try plain.send(Array("in the clear".utf8))
        try friend.send(Array("from a friend".utf8))

        #expect(try ZMQ.poll([(router, .readable)], timeoutMilliseconds: 5000) == [.readable])
        let got = try #require(try router.receiveAuthenticated(dontWait: true))
        #expect(got.frames.last == Array("from a friend".utf8))
        #expect(got.userID == ZMQ.z85Encode(trusted.publicKey))
        // Nothing else ever arrives, and neither refused client hears anything.
        #expect(try ZMQ.poll([(router, .readable), (other, .readable), (plain, .readable)], timeoutMilliseconds: 1000) == [[], [], []])
        #expect(refused.withLock { $0.contains(stranger.publicKey) })
        // (The plain client fails at the mechanism, before the handler is asked.)
        #expect(zap.refusals >= 1)

        // Trusted from now on: the stranger's client reconnects and gets in.
        zap.setTrusted([stranger.publicKey], as: "friend")
        #expect(zap.name(of: trusted.publicKey) == nil)
        let late = try client(stranger)
        try late.send(Array("let in".utf8))
        #expect(try ZMQ.poll([(router, .readable)], timeoutMilliseconds: 5000) == [.readable])
        let second = try #require(try router.receiveAuthenticated(dontWait: true))
        #expect(second.userID == ZMQ.z85Encode(stranger.publicKey))
    }

    /// An unknown key's handshake waits for the grace period: trusted meanwhile, it gets in
    /// (a next stage is told of its previous stage a moment after that one connects).
    @Test func aKeyTrustedWhileItsHandshakeWaitsGetsIn() throws {
        let server = try ZMQ.curveKeyPair(), late = try ZMQ.curveKeyPair()
        let context = try ZMQContext()
        let zap = try ZAPHandler(context: context, grace: .seconds(10))
        defer { zap.stop() }
        let (router, dealer) = try curveLink(context, server: server, client: late)
        try dealer.send(Array("early".utf8))
        #expect(try ZMQ.poll([(router, .readable)], timeoutMilliseconds: 300) == [[]])
        zap.trust(late.publicKey, as: "stage")
        #expect(try ZMQ.poll([(router, .readable)], timeoutMilliseconds: 5000) == [.readable])
        let got = try #require(try router.receiveAuthenticated(dontWait: true))
        #expect(got.frames.last == Array("early".utf8) && got.userID == ZMQ.z85Encode(late.publicKey))
        #expect(zap.refusals == 0)
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

/// A CURVE server ROUTER on loopback with `server`'s keys, and a DEALER connected to it with
/// `client`'s, taking `serverKey` (the server's own unless given) for the server's key.
private func curveLink(_ context: ZMQContext, server: (publicKey: [UInt8], secretKey: [UInt8]),
                       client: (publicKey: [UInt8], secretKey: [UInt8]), serverKey: [UInt8]? = nil) throws -> (router: ZMQSocket, dealer: ZMQSocket) {
    let router = try ZMQSocket(context, type: .router)
    try router.setCurveServer(secretKey: server.secretKey)
    try router.bind("tcp://127.0.0.1:*")
    let dealer = try ZMQSocket(context, type: .dealer)
    try dealer.setCurveClient(serverPublicKey: serverKey ?? server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey)
    try dealer.connect(try router.lastEndpoint())
    return (router, dealer)
}
