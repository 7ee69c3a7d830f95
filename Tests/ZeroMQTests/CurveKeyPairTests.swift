import Foundation
import Testing
import ZeroMQ

/// Key files as `strata keygen` writes them and workers and coordinators will read them.
@Suite struct CurveKeyPairTests {
    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("strata-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Written and read back: the secret file is 0600, the public key derived from it is the
    /// one in the .pub file, and the pair completes a CurveZMQ handshake.
    @Test func writtenKeysReadBackAndWork() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = try CurveKeyPair.generate()
        try keys.write(to: dir + "/worker")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/worker.key")[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        let loaded = try CurveKeyPair.load(secretFile: dir + "/worker.key")
        #expect(loaded.secretKey == keys.secretKey && loaded.publicKey == keys.publicKey)
        #expect(try CurveKeyPair.loadPublic(dir + "/worker.pub") == keys.publicKey)
        #expect(try CurveKeyPair.loadPublic(ZMQ.z85Encode(keys.publicKey)!) == keys.publicKey)

        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setCurveServer(secretKey: loaded.secretKey)
        try router.bind("tcp://127.0.0.1:*")
        let client = try ZMQ.curveKeyPair()
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setCurveClient(serverPublicKey: try CurveKeyPair.loadPublic(dir + "/worker.pub"),
                                  publicKey: client.publicKey, secretKey: client.secretKey)
        try dealer.connect(try router.lastEndpoint())
        try dealer.send([Array("hello".utf8)])
        #expect(try receive(router)?.last == Array("hello".utf8))
    }

    /// What is refused, by name: an existing pair (unless replaced), a secret file others may
    /// read, a file that is not one Z85 key, a missing file.
    @Test func badKeyFilesAreRefusedByName() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = try CurveKeyPair.generate()
        try keys.write(to: dir + "/k")
        #expect(throws: CurveKeyError.self) { try keys.write(to: dir + "/k") }
        let other = try CurveKeyPair.generate()
        try other.write(to: dir + "/k", replacing: true)
        #expect(try CurveKeyPair.load(secretFile: dir + "/k.key").publicKey == other.publicKey)

        chmod(dir + "/k.key", 0o644)
        #expect(throws: CurveKeyError.tooOpen(dir + "/k.key", "644")) { try CurveKeyPair.load(secretFile: dir + "/k.key") }
        chmod(dir + "/k.key", 0o660)
        #expect(throws: CurveKeyError.tooOpen(dir + "/k.key", "660")) { try CurveKeyPair.load(secretFile: dir + "/k.key") }
        // Read-only to owner and group, as a Kubernetes Secret mounted for a pod's fsGroup.
        chmod(dir + "/k.key", 0o440)
        #expect((try? CurveKeyPair.load(secretFile: dir + "/k.key")) != nil)
        try "not a key\n".write(toFile: dir + "/bad.key", atomically: false, encoding: .utf8)
        chmod(dir + "/bad.key", 0o600)
        #expect(throws: CurveKeyError.self) { try CurveKeyPair.load(secretFile: dir + "/bad.key") }
        #expect(throws: CurveKeyError.self) { try CurveKeyPair.loadPublic(dir + "/missing.pub") }
        do {
            _ = try CurveKeyPair.load(secretFile: dir + "/bad.key")
        } catch {
            #expect(error.description.contains("bad.key") && error.description.contains("40 Z85 characters"))
        }
    }
}
