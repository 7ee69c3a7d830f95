#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// CurveZMQ: keys are 32 raw bytes everywhere in this API; Z85 (40 printable characters) is
/// only for showing or storing them as text.
extension ZMQ {
    /// A fresh CurveZMQ key pair (`zmq_curve_keypair`), each key 32 raw bytes.
    /// Throws ENOTSUP when libzmq lacks CURVE (see ``hasCurve``).
    public static func curveKeyPair() throws(ZMQError) -> (publicKey: [UInt8], secretKey: [UInt8]) {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        // The secret's text form is not needed past this call: wipe it rather than leave it in
        // freed memory.
        defer { for i in secretText.indices { secretText[i] = 0 } }
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else { throw .last("zmq_curve_keypair") }
        var publicKey = [UInt8](repeating: 0, count: 32)
        var secretKey = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&publicKey, publicText) != nil, zmq_z85_decode(&secretKey, secretText) != nil else {
            throw .last("zmq_z85_decode")
        }
        return (publicKey, secretKey)
    }

    /// Z85-encodes `data` (a multiple of 4 bytes: a 32-byte key gives 40 characters);
    /// nil for other lengths.
    public static func z85Encode(_ data: [UInt8]) -> String? {
        guard data.count % 4 == 0 else { return nil }
        guard !data.isEmpty else { return "" }
        var text = [CChar](repeating: 0, count: data.count / 4 * 5 + 1)
        let encoded = data.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, $0.count) }
        guard encoded != nil else { return nil }
        return String(decoding: text.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes Z85 text (a multiple of 5 characters: 40 give a 32-byte key); nil for other
    /// lengths, characters outside the Z85 alphabet, or groups worth more than 32 bits.
    public static func z85Decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        // libzmq reads a C string: an embedded NUL would silently shorten the input.
        guard characters.count % 5 == 0, !characters.contains(0) else { return nil }
        guard !characters.isEmpty else { return [] }
        var data = [UInt8](repeating: 0, count: characters.count / 5 * 4)
        let decoded = text.withCString { zmq_z85_decode(&data, $0) }
        return decoded == nil ? nil : data
    }
}

extension ZMQSocket {
    /// Makes this socket a CURVE server with its 32-byte secret key: every connection it
    /// accepts or makes must then complete a CurveZMQ handshake. Set before `bind`.
    public func setCurveServer(secretKey: [UInt8]) throws(ZMQError) {
        try checkKey(secretKey, "ZMQ_CURVE_SECRETKEY")
        try setOption(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", 1)
        try setOption(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", bytes: secretKey)
    }

    /// Makes this socket a CURVE client of the server with `serverPublicKey`, with its own
    /// key pair; all keys 32 bytes. A wrong server key means the handshake never completes and
    /// nothing is delivered either way. Set before `connect`.
    public func setCurveClient(serverPublicKey: [UInt8], publicKey: [UInt8], secretKey: [UInt8]) throws(ZMQError) {
        try checkKey(serverPublicKey, "ZMQ_CURVE_SERVERKEY")
        try checkKey(publicKey, "ZMQ_CURVE_PUBLICKEY")
        try checkKey(secretKey, "ZMQ_CURVE_SECRETKEY")
        try setOption(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", bytes: serverPublicKey)
        try setOption(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", bytes: publicKey)
        try setOption(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", bytes: secretKey)
    }

    /// libzmq would also take 40- or 41-byte Z85 text for a key; this API means raw keys only,
    /// so anything but 32 bytes is EINVAL here rather than being reinterpreted.
    private func checkKey(_ key: [UInt8], _ name: String) throws(ZMQError) {
        guard key.count == 32 else {
            throw ZMQError(operation: "setsockopt \(name) (\(key.count) bytes, want 32)", code: EINVAL)
        }
    }
}

/// How a process secures its links: CurveZMQ with its own key pair, or, only when asked for
/// explicitly (`--insecure`), not at all.
public enum LinkSecurity: Sendable {
    case insecure
    case curve(CurveKeyPair)

    /// The process's keys; nil for plain links.
    public var keys: CurveKeyPair? {
        if case let .curve(keys) = self { return keys }
        return nil
    }
}

extension ZMQSocket {
    /// With CURVE, makes this socket a CURVE server: only clients its context's ``ZAPHandler``
    /// trusts complete a handshake. Set before `bind`.
    public func secureAsServer(_ security: LinkSecurity) throws(ZMQError) {
        guard let keys = security.keys else { return }
        try setCurveServer(secretKey: keys.secretKey)
    }

    /// With CURVE, makes this socket a client of the server with `serverKey` (EINVAL when there
    /// is none: an encrypted link cannot be made to a server whose key is unknown). Set before
    /// `connect`.
    public func secureAsClient(_ security: LinkSecurity, serverKey: [UInt8]?) throws(ZMQError) {
        guard let keys = security.keys else { return }
        guard let serverKey else { throw ZMQError(operation: "setsockopt ZMQ_CURVE_SERVERKEY (no key for the server)", code: EINVAL) }
        try setCurveClient(serverPublicKey: serverKey, publicKey: keys.publicKey, secretKey: keys.secretKey)
    }
}
