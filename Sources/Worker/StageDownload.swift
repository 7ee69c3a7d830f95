import Foundation
import StrataModel
import StrataWire
import Synchronization
import ZeroMQ

/// A stage file arriving in chunks from the coordinator, written to disk as they come into a
/// temporary file beside its place in the cache, and moved there whole. The worker then checks
/// its tensors against the assignment's digests before loading it.
///
/// The socket thread hands each chunk on (`append`) and the writes run on a queue of their own,
/// which wakes the socket thread after each: a slow disk slows the acknowledgements, and with
/// them the coordinator's stream, but never the socket thread's answers to heartbeats (a 4 MiB
/// chunk takes 4 s on a disk that writes 1 MiB/s, twice the coordinator's heartbeat timeout).
/// The coordinator sends a window ahead of the acknowledgements, so the chunks waiting here are
/// bounded by it; one that runs further ahead than `maxAheadBytes` is refused.
final class StageDownload: @unchecked Sendable {
    let assign: Assign
    let destination: String
    /// The most bytes handed to the writer and not yet written: the coordinator's window
    /// (16 MiB) with room to spare.
    static let maxAheadBytes: UInt64 = 64 << 20

    /// What the writer did, as the socket thread takes it (`take()`).
    struct Progress {
        /// Bytes of the file written so far.
        var written: UInt64
        /// The file is whole and in its place.
        var complete: Bool
        var failure: WireErrorMessage?
    }

    private let temporary: String
    /// Bytes handed to the writer (touched on the socket thread only).
    private var queued: UInt64 = 0
    /// The last `written` the socket thread took.
    private var taken: UInt64 = 0
    private let writes = DispatchQueue(label: "strata-stage-writer")
    /// Touched on `writes` only: the file, the progress lines, and the socket that wakes the
    /// socket thread (made there, used and closed on `writes` alone).
    private let handle: FileHandle
    private var lines: ByteProgress
    private let waker: ZMQSocket

    private struct State {
        var written: UInt64 = 0
        var complete = false
        var failure: WireErrorMessage?
        var abandoned = false
    }
    private let state = Mutex(State())

    /// `wake` is the inproc endpoint the socket thread pulls on.
    init(assign: Assign, destination: String, context: ZMQContext, wake: String, log: @escaping (String) -> Void) throws {
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
        lines = ByteProgress("receiving layers \(assign.layerStart)-\(assign.layerEnd - 1)", total: Int(assign.stageFileBytes), log: log)
        waker = try ZMQSocket(context, type: .push)
        try waker.connect(wake)
    }

    /// Hands a chunk to the writer (its CRC was checked by the decoder); chunks come in order.
    func append(_ chunk: WeightChunk) throws(WireErrorMessage) {
        guard queued < assign.stageFileBytes else {
            throw WireErrorMessage(code: .malformed, message: "a weight chunk after the whole stage file of \(assign.stageFileBytes) bytes")
        }
        guard chunk.offset == queued, chunk.totalBytes == assign.stageFileBytes,
              UInt64(chunk.data.count) <= assign.stageFileBytes - queued else {
            throw WireErrorMessage(code: .malformed, message:
                "weight chunk of \(chunk.data.count) bytes at offset \(chunk.offset) of \(chunk.totalBytes); expected offset \(queued) of \(assign.stageFileBytes)")
        }
        let ahead = queued - state.withLock { $0.written }
        guard ahead + UInt64(chunk.data.count) <= Self.maxAheadBytes else {
            throw WireErrorMessage(code: .malformed, message:
                "the coordinator sent \((ahead + UInt64(chunk.data.count)) >> 20) MiB of the stage file ahead of what this worker has written; it may send \(Self.maxAheadBytes >> 20) MiB")
        }
        queued += UInt64(chunk.data.count)
        let last = queued == assign.stageFileBytes
        writes.async { [self] in write(chunk.data, last: last) }
    }

    /// What the writer did since the last call, or nil if nothing.
    func take() -> Progress? {
        let now = state.withLock { Progress(written: $0.written, complete: $0.complete, failure: $0.failure) }
        guard now.written != taken || now.complete || now.failure != nil else { return nil }
        taken = now.written
        return now
    }

    /// Stops writing: the chunks still queued are dropped, and the partial file removed.
    func abandon() {
        state.withLock { $0.abandoned = true }
        writes.async { [self] in
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            waker.close()
        }
    }

    // MARK: The writer

    private func write(_ data: [UInt8], last: Bool) {
        guard !state.withLock({ $0.abandoned || $0.failure != nil }) else { return }
        var failure: WireErrorMessage?
        do {
            try handle.write(contentsOf: data)
            let written = state.withLock { s in
                s.written += UInt64(data.count)
                return s.written
            }
            lines.update(Int(written))
            if last { failure = finish(written) }
        } catch {
            failure = WireErrorMessage(code: .loadFailed, message: "writing \(temporary): \(error.localizedDescription)")
        }
        state.withLock { s in
            s.failure = failure
            s.complete = last && failure == nil
        }
        _ = try? waker.send([1], dontWait: true)
        if last || failure != nil { waker.close() }
    }

    /// Moves the complete file into the cache.
    private func finish(_ written: UInt64) -> WireErrorMessage? {
        lines.finish(Int(written))
        try? handle.close()
        try? FileManager.default.removeItem(atPath: destination)
        do { try FileManager.default.moveItem(atPath: temporary, toPath: destination) } catch {
            return WireErrorMessage(code: .loadFailed, message: "moving the stage file into \(destination): \(error.localizedDescription)")
        }
        return nil
    }
}
