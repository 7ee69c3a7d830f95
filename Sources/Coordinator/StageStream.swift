import Logging
import StrataModel
import StrataWire

/// A stage file on its way to a worker that has no copy of the model. Chunks are read from the
/// model file as they go (`GGUFWriter.chunks(of:)`), and at most `window` bytes run ahead of what
/// the worker has acknowledged: neither side holds more than a few chunks, whatever the stage's
/// size, and the acknowledgements give the progress both sides show.
final class StageStream {
    let link: WorkerLink
    let byteCount: Int
    private var chunks: GGUFWriter.ChunkReader
    private let window: Int
    private(set) var sent = 0
    private(set) var acknowledged = 0
    private var progress: ByteProgress

    init(to link: WorkerLink, file: GGUFWriter, chunkBytes: Int, window: Int, logger: Logger) {
        self.link = link
        chunks = file.chunks(of: chunkBytes)
        byteCount = chunks.byteCount
        self.window = max(window, chunkBytes)
        var logger = logger
        logger[metadataKey: "stage"] = "\(link.stage)"
        logger[metadataKey: "worker"] = "\(link.endpoint)"
        progress = ByteProgress("streaming layers \(link.layers.lowerBound)-\(link.layers.upperBound - 1)", total: byteCount) { [logger] in
            logger.info("\($0)")
        }
    }

    var isComplete: Bool { acknowledged == byteCount }

    /// Sends chunks while the window has room.
    func pump() throws(ClusterError) {
        while sent < byteCount, sent - acknowledged < window {
            let chunk: [UInt8]
            do {
                guard let next = try chunks.next() else { break }
                chunk = next
            } catch {
                throw .model("cannot read layers \(link.layers) for \(link.endpoint): \(error)")
            }
            do {
                try link.send(.weightChunk(WeightChunk(offset: UInt64(sent), totalBytes: UInt64(byteCount), data: chunk)))
            } catch {
                throw .unreachable(endpoint: link.endpoint, seconds: 0)
            }
            sent += chunk.count
        }
    }

    /// The worker has written `bytes` of the file.
    func acknowledge(_ bytes: UInt64) {
        acknowledged = min(max(acknowledged, Int(clamping: bytes)), sent)
        progress.update(acknowledged)
        if isComplete { progress.finish(acknowledged) }
    }
}
