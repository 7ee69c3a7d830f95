import Crypto
import Foundation

/// SHA-256 digests of a model file: of the whole file (the model's identity) and of each
/// tensor's data bytes (what a pipeline stage checks of its own layers, without reading the rest).
///
/// Hashing a 40 GB file takes minutes, so digests are cached on disk (`DigestCache`), keyed by
/// the file's path, size, modification time and inode: a file changed in any of those is hashed
/// again. Files are read with plain reads, not through a mapping, so hashing does not count
/// against the process's resident memory.
public struct ModelDigests: Codable, Sendable, Equatable {
    /// What identifies the file as it was hashed.
    public struct Stamp: Codable, Sendable, Equatable {
        public var path: String
        public var size: UInt64
        public var modifiedNanoseconds: Int64
        public var inode: UInt64
        public var device: UInt64

        /// The stamp of the file at `path` now (`path` resolved to an absolute, symlink-free one).
        public init(path: String) throws(DigestError) {
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            var st = stat()
            guard stat(resolved, &st) == 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
            self.path = resolved
            size = UInt64(st.st_size)
            modifiedNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            inode = UInt64(st.st_ino)
            device = UInt64(st.st_dev)
        }
    }

    public var stamp: Stamp
    /// The whole file's SHA-256 (hex), when it was hashed whole.
    public var sha256: String?
    /// Tensor name → SHA-256 (hex) of its data bytes, for the tensors hashed so far.
    public var tensors: [String: String]

    public init(stamp: Stamp, sha256: String? = nil, tensors: [String: String] = [:]) {
        self.stamp = stamp; self.sha256 = sha256; self.tensors = tensors
    }

    /// The whole file's digest and every tensor's, from `cache` when it holds them for the file
    /// as it is now, else in one pass over the file (then stored in `cache`). `progress(done,
    /// total)` is called with bytes read as the pass goes; it returns false to stop the pass
    /// (`DigestError.stopped`).
    public static func ofModel(_ file: GGUFFile, cache: DigestCache?,
                               progress: ((Int, Int) -> Bool)? = nil) throws(DigestError) -> ModelDigests {
        let stamp = try Stamp(path: file.path)
        if let cached = cache?.load(stamp), cached.sha256 != nil, file.tensors.allSatisfy({ cached.tensors[$0.name] != nil }) {
            return cached
        }
        let (whole, tensors) = try hash(file, tensors: file.tensors, range: 0 ..< file.fileSize, whole: true, progress: progress)
        let digests = ModelDigests(stamp: stamp, sha256: whole, tensors: tensors)
        cache?.store(digests)
        return digests
    }

    /// The digests of the named tensors of `file`: from `cache` when it has them for the file as
    /// it is now, else by reading just those tensors' bytes (then added to the cache's entry).
    public static func ofTensors(_ names: [String], in file: GGUFFile, cache: DigestCache?) throws(DigestError) -> [String: String] {
        let stamp = try Stamp(path: file.path)
        var entry = cache?.load(stamp) ?? ModelDigests(stamp: stamp)
        let missing = try names.filter { entry.tensors[$0] == nil }.map { name throws(DigestError) in
            guard let info = file.tensorInfo(name) else { throw .missingTensor(name) }
            return info
        }
        if !missing.isEmpty {
            // In file order, cut into one run of tensors per core, the runs read at once.
            let sorted = missing.sorted { $0.offset < $1.offset }
            let parts = min(sorted.count, ProcessInfo.processInfo.activeProcessorCount)
            nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Result<[String: String], DigestError>>.allocate(capacity: parts)
            results.initialize(repeating: .success([:]))
            defer { results.deinitialize().deallocate() }
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let run = Array(sorted[sorted.count * p / parts ..< sorted.count * (p + 1) / parts])
                let start = file.dataOffset + run[0].offset, end = file.dataOffset + run.map { $0.offset + $0.byteCount }.max()!
                results[p] = Result { () throws(DigestError) in try hash(file, tensors: run, range: start ..< end, whole: false, progress: nil).1 }
            }
            for r in results { entry.tensors.merge(try r.get(), uniquingKeysWith: { $1 }) }
            cache?.store(entry)
        }
        return entry.tensors.filter { names.contains($0.key) }
    }

    /// Reads `range` of the file once, hashing every tensor it covers and, with `whole`, the
    /// range itself: the digest of the range (hex, when `whole`) and of each tensor.
    private static func hash(_ file: GGUFFile, tensors: [GGUFTensorInfo], range: Range<Int>, whole: Bool,
                             progress: ((Int, Int) -> Bool)?) throws(DigestError) -> (String?, [String: String]) {
        struct Span { let name: String; let start: Int; let end: Int }
        let spans = tensors.map { Span(name: $0.name, start: file.dataOffset + $0.offset, end: file.dataOffset + $0.offset + $0.byteCount) }
            .sorted { $0.start < $1.start }
        // Hashers: one per span, then the whole range's.
        nonisolated(unsafe) let hashers = UnsafeMutableBufferPointer<SHA256>.allocate(capacity: spans.count + 1)
        hashers.initialize(repeating: SHA256())
        defer { hashers.deinitialize().deallocate() }
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotRead(path: file.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let chunk = 8 << 20
        nonisolated(unsafe) let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var position = range.lowerBound
        var first = 0  // the first span not yet hashed to its end
        while position < range.upperBound {
            let n = pread(fd, buffer, min(chunk, range.upperBound - position), off_t(position))
            guard n > 0 else {
                throw .cannotRead(path: file.path, reason: n == 0 ? "the file ends at \(position) bytes" : String(cString: strerror(errno)))
            }
            let lo = position, hi = position + n, from = first
            // The whole range's hasher on one thread, the tensors' on another: with two cores,
            // every byte is hashed twice in the time of once.
            DispatchQueue.concurrentPerform(iterations: whole ? 2 : 1) { part in
                if part == 1 {
                    hashers[spans.count].update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: n))
                    return
                }
                var i = from
                while i < spans.count, spans[i].start < hi {
                    let s = max(lo, spans[i].start), e = min(hi, spans[i].end)
                    if s < e { hashers[i].update(bufferPointer: UnsafeRawBufferPointer(start: buffer + (s - lo), count: e - s)) }
                    i += 1
                }
            }
            while first < spans.count, spans[first].end <= hi { first += 1 }
            position = hi
            if progress?(position - range.lowerBound, range.count) == false { throw .stopped(path: file.path) }
        }
        var out: [String: String] = [:]
        for (i, span) in spans.enumerated() { out[span.name] = hex(hashers[i].finalize()) }
        return (whole ? hex(hashers[spans.count].finalize()) : nil, out)
    }

    public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of a hex string, or nil if it is not one.
    public static func bytes(hex: String) -> [UInt8]? {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        for i in stride(from: 0, to: utf8.count, by: 2) {
            guard let h = nibble(utf8[i]), let l = nibble(utf8[i + 1]) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }
}

public enum DigestError: Error, Equatable, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case missingTensor(String)
    /// The caller stopped the pass.
    case stopped(path: String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason): "cannot read \(path) to hash it: \(reason)"
        case let .missingTensor(name): "the file has no tensor \(name)"
        case let .stopped(path): "stopped hashing \(path)"
        }
    }
}

/// Digests of model files kept on disk, one small JSON file per model file, named by a hash of
/// its path. An entry is used only while the file's stamp (size, modification time, inode) is
/// unchanged. Failing to read or write the cache only costs a re-hash.
public struct DigestCache: Sendable {
    public let directory: String

    /// `$XDG_CACHE_HOME/strata/digests`, or `~/.cache/strata/digests`.
    public static let defaultDirectory: String = {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("strata/digests")
    }()

    public init(directory: String = DigestCache.defaultDirectory) { self.directory = directory }

    private func entryPath(_ filePath: String) -> String {
        let name = ModelDigests.hex(SHA256.hash(data: Data(filePath.utf8)).prefix(16))
        return (directory as NSString).appendingPathComponent(name + ".json")
    }

    /// The cached digests of the file with `stamp`, if the cache holds them for it as it is now.
    public func load(_ stamp: ModelDigests.Stamp) -> ModelDigests? {
        guard let data = FileManager.default.contents(atPath: entryPath(stamp.path)),
              let entry = try? JSONDecoder().decode(ModelDigests.self, from: data), entry.stamp == stamp else { return nil }
        return entry
    }

    /// Stores an entry (through a temporary file renamed into place, so readers never see half).
    public func store(_ digests: ModelDigests) {
        let path = entryPath(digests.stamp.path)
        let temporary = path + ".\(getpid()).tmp"
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil,
              let data = try? JSONEncoder().encode(digests),
              FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}
