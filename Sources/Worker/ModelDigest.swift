import Crypto
import Foundation
import StrataWire

/// The identity of a model file: the SHA-256 of its bytes.
public enum ModelDigest {
    /// Hashes the file with plain reads, not through a mapping, so that hashing a whole model
    /// does not count against this process's resident memory.
    public static func sha256(ofFile path: String) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return Array(hasher.finalize())
    }

    public static func sha256(of bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// The identity of the model at `path`.
    public static func identity(ofFile path: String) throws -> ModelIdentity {
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64 ?? 0
        return ModelIdentity(sha256: try sha256(ofFile: path), byteCount: size,
                             name: URL(fileURLWithPath: path).lastPathComponent)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
