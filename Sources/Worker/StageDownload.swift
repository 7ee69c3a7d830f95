import Crypto
import Foundation
import StrataWire

/// A stage file arriving in chunks from the coordinator, written to a temporary file beside its
/// place in the cache and moved there once its SHA-256 checks out.
final class StageDownload {
    let assign: Assign
    let destination: String
    private let temporary: String
    private let handle: FileHandle
    private var hasher = SHA256()
    private(set) var received: UInt64 = 0

    init(assign: Assign, destination: String) throws {
        self.assign = assign
        self.destination = destination
        temporary = destination + ".part"
        try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: temporary, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: temporary) else {
            throw WireErrorMessage(code: .loadFailed, message: "cannot write \(temporary)")
        }
        self.handle = handle
    }

    var isComplete: Bool { received == assign.stageFileBytes }

    /// Appends a chunk (its CRC was checked by the decoder); chunks come in order.
    func append(_ chunk: WeightChunk) throws(WireErrorMessage) {
        guard chunk.offset == received, chunk.totalBytes == assign.stageFileBytes else {
            throw WireErrorMessage(code: .malformed, message:
                "weight chunk at offset \(chunk.offset) of \(chunk.totalBytes) bytes; expected offset \(received) of \(assign.stageFileBytes)")
        }
        do { try handle.write(contentsOf: chunk.data) } catch {
            throw WireErrorMessage(code: .loadFailed, message: "writing \(temporary): \(error.localizedDescription)")
        }
        hasher.update(data: chunk.data)
        received += UInt64(chunk.data.count)
    }

    /// Checks the whole file's digest and moves it into the cache.
    func finish() throws(WireErrorMessage) {
        try? handle.close()
        let digest = Array(hasher.finalize())
        guard digest == assign.stageFileSHA256 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw WireErrorMessage(code: .loadFailed, message:
                "the streamed stage file's SHA-256 is \(ModelDigest.hex(digest)); the coordinator announced \(ModelDigest.hex(assign.stageFileSHA256))")
        }
        try? FileManager.default.removeItem(atPath: destination)
        do { try FileManager.default.moveItem(atPath: temporary, toPath: destination) } catch {
            throw WireErrorMessage(code: .loadFailed, message: "moving the stage file into \(destination): \(error.localizedDescription)")
        }
    }

    func abandon() {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: temporary)
    }
}
