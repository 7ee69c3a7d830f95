#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

/// A process's CurveZMQ key pair (32 raw bytes each), and the two files it is kept in, as
/// `strata keygen NAME` writes them: `NAME.key` holds the secret key and `NAME.pub` the public
/// key, each as one line of Z85 text (40 characters). The secret file is the process's identity: it is created with mode 0600 and
/// refused when others may read it (or its group write it). The public file is what peers are told to
/// trust; the public key is derived from the secret one, so a pair cannot disagree.
public struct CurveKeyPair: Sendable {
    public let publicKey: [UInt8]
    public let secretKey: [UInt8]

    public init(publicKey: [UInt8], secretKey: [UInt8]) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The public key as Z85 text, as logs and `.pub` files show it.
    public var publicText: String { ZMQ.z85Encode(publicKey)! }

    /// A fresh key pair.
    public static func generate() throws(CurveKeyError) -> CurveKeyPair {
        do {
            let pair = try ZMQ.curveKeyPair()
            return CurveKeyPair(publicKey: pair.publicKey, secretKey: pair.secretKey)
        } catch {
            throw .unavailable("cannot make a CurveZMQ key pair: \(error)")
        }
    }

    /// Writes `base.key` (0600, created afresh: an existing file is an error unless
    /// `replacing`) and `base.pub`.
    public func write(to base: String, replacing: Bool = false) throws(CurveKeyError) {
        let secretPath = base + ".key", publicPath = base + ".pub"
        if replacing {
            unlink(secretPath)
            unlink(publicPath)
        }
        try Self.create(secretPath, ZMQ.z85Encode(secretKey)! + "\n", mode: 0o600)
        try Self.create(publicPath, ZMQ.z85Encode(publicKey)! + "\n", mode: 0o644)
    }

    /// Reads a secret key file (and derives its public key); refuses one that others may read
    /// or its group may write, or that does not hold one Z85 key.
    public static func load(secretFile path: String) throws(CurveKeyError) -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        // Group read is allowed: Kubernetes gives a Secret's files to the pod's fsGroup (0440).
        guard info.st_mode & 0o027 == 0 else {
            throw .tooOpen(path, String(info.st_mode & 0o777, radix: 8))
        }
        let secret = try key(in: path)
        var secretText = Array((ZMQ.z85Encode(secret)! + "\0").utf8CString)
        defer { for i in secretText.indices { secretText[i] = 0 } }
        var publicText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicText, &secretText) == 0,
              let publicKey = ZMQ.z85Decode(String(decoding: publicText.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)) else {
            throw .unavailable("cannot derive the public key of \(path): this libzmq lacks CurveZMQ")
        }
        return CurveKeyPair(publicKey: publicKey, secretKey: secret)
    }

    /// Reads a public key: a file holding one Z85 key, or the 40 characters themselves.
    public static func loadPublic(_ fileOrKey: String) throws(CurveKeyError) -> [UInt8] {
        if fileOrKey.utf8.count == 40, access(fileOrKey, F_OK) != 0 {
            guard let key = ZMQ.z85Decode(fileOrKey) else { throw .malformed(fileOrKey, "not a Z85 key of 40 characters") }
            return key
        }
        return try key(in: fileOrKey)
    }

    /// The one key a key file holds: 40 Z85 characters, then an optional line end.
    private static func key(in path: String) throws(CurveKeyError) -> [UInt8] {
        guard let file = fopen(path, "r") else { throw .unreadable(path, String(cString: strerror(errno))) }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = fread(&buffer, 1, buffer.count, file)
        defer { for i in buffer.indices { buffer[i] = 0 } }
        var text = Array(buffer.prefix(n))
        while let last = text.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { text.removeLast() }
        guard text.count == 40, let key = ZMQ.z85Decode(String(decoding: text, as: UTF8.self)), key.count == 32 else {
            throw .malformed(path, "a key file holds one CurveZMQ key: 40 Z85 characters on one line")
        }
        return key
    }

    private static func create(_ path: String, _ text: String, mode: mode_t) throws(CurveKeyError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw .unwritable(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        // The mode is the one asked for, whatever the umask.
        fchmod(fd, mode)
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw .unwritable(path, String(cString: strerror(errno))) }
    }
}

/// Why a key file could not be made or read, naming the file.
public enum CurveKeyError: Error, Equatable, CustomStringConvertible {
    case unavailable(String)
    case unreadable(String, String)
    case unwritable(String, String)
    case malformed(String, String)
    /// A secret key file that others may read (its mode, in octal).
    case tooOpen(String, String)

    public var description: String {
        switch self {
        case let .unavailable(why): why
        case let .unreadable(path, why): "cannot read \(path): \(why)"
        case let .unwritable(path, why): "cannot write \(path): \(why)"
        case let .malformed(path, why): "\(path): \(why)"
        case let .tooOpen(path, mode):
            "\(path) holds a secret key but its mode is \(mode): others may read or change it (chmod 600 \(path))"
        }
    }
}
