import Foundation
import StrataModel
import StrataWire

/// A stage file arriving in chunks from the coordinator, written to disk as they come (never
/// held in memory) into a temporary file beside its place in the cache, and moved there whole.
/// The worker then checks its tensors against the assignment's digests before loading it.
final class StageDownload {
    let assign: Assign
    let destination: String
    private let temporary: String
    private let handle: FileHandle
    private(set) var received: UInt64 = 0
    private var progress: ByteProgress

    init(assign: Assign, destination: String, log: @escaping (String) -> Void) throws {
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
        progress = ByteProgress("receiving layers \(assign.layerStart)-\(assign.layerEnd - 1)", total: Int(assign.stageFileBytes), log: log)
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
        received += UInt64(chunk.data.count)
        progress.update(Int(received))
    }

    /// Moves the complete file into the cache.
    func finish() throws(WireErrorMessage) {
        progress.finish(Int(received))
        try? handle.close()
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
