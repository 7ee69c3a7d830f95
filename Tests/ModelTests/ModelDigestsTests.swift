import Crypto
import Foundation
import StrataModel
import TestSupport
import Testing

/// Digests of model files (one pass, cached by the file's stamp) and stage files streamed from
/// the model without holding them.
@Suite struct ModelDigestsTests {
    static let tiny = TinyModel(dim: 64, hiddenDim: 128, nLayers: 3, nHeads: 4, nKVHeads: 2, vocab: 80, seed: 5,
                                matrixType: .q4_1)

    private func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("strata-digests-\(UUID().uuidString)").path
    }

    private func sha(_ bytes: some Sequence<UInt8>) -> String { ModelDigests.hex(SHA256.hash(data: Data(bytes))) }

    /// One pass gives the whole file's SHA-256 and each tensor's, equal to hashing them directly.
    @Test func onePassGivesTheFileAndEveryTensor() throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        let digests = try ModelDigests.ofModel(file, cache: nil)
        #expect(digests.sha256 == sha(try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(digests.tensors.count == file.tensors.count)
        for t in file.tensors { #expect(digests.tensors[t.name] == sha(file.data(of: t)), "\(t.name)") }
        // A few tensors alone give the same digests.
        let names = try StageFile.tensorNames(in: file, layers: 1 ..< 2)
        let some = try ModelDigests.ofTensors(names, in: file, cache: nil)
        #expect(some.count == names.count && names.allSatisfy { some[$0] == digests.tensors[$0] })
        #expect(throws: DigestError.missingTensor("blk.9.attn_q.weight")) {
            try ModelDigests.ofTensors(["blk.9.attn_q.weight"], in: file, cache: nil)
        }
    }

    /// A cached entry is used while the file's stamp is unchanged (a forged entry comes back as
    /// it is: nothing was read), and a changed file is hashed again.
    @Test func theCacheHoldsUntilTheFileChanges() throws {
        let path = try Self.tiny.write()
        let dir = temporaryDirectory()
        defer { for p in [path, dir] { try? FileManager.default.removeItem(atPath: p) } }
        let cache = DigestCache(directory: dir)
        let file = try GGUFFile(path: path)
        let real = try ModelDigests.ofModel(file, cache: cache)
        #expect(cache.load(try ModelDigests.Stamp(path: path)) == real)

        var forged = real
        forged.sha256 = String(repeating: "0", count: 64)
        cache.store(forged)
        #expect(try ModelDigests.ofModel(file, cache: cache) == forged)
        #expect(try ModelDigests.ofTensors(["blk.0.attn_q.weight"], in: file, cache: cache)
            == ["blk.0.attn_q.weight": forged.tensors["blk.0.attn_q.weight"]!])

        // Touch the file: another modification time, the same bytes. The stale entry is ignored.
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let again = try ModelDigests.ofModel(file, cache: cache)
        #expect(again.sha256 == real.sha256 && again.tensors == real.tensors && again.stamp != real.stamp)
    }

    /// Hashing only some tensors caches just those, and a later whole-model pass completes it.
    @Test func tensorDigestsAccumulateInTheCache() throws {
        let path = try Self.tiny.write()
        let dir = temporaryDirectory()
        defer { for p in [path, dir] { try? FileManager.default.removeItem(atPath: p) } }
        let cache = DigestCache(directory: dir)
        let file = try GGUFFile(path: path)
        let names = try StageFile.tensorNames(in: file, layers: 2 ..< 3)
        _ = try ModelDigests.ofTensors(names, in: file, cache: cache)
        let entry = try #require(cache.load(try ModelDigests.Stamp(path: path)))
        #expect(entry.sha256 == nil && Set(entry.tensors.keys) == Set(names))
        let whole = try ModelDigests.ofModel(file, cache: cache)
        #expect(whole.sha256 != nil && whole.tensors.count == file.tensors.count)
    }

    /// A stage file read in chunks is the stage file written whole, byte for byte, and holds the
    /// model's tensors of its layers, read from the model file.
    @Test(arguments: [1000, 4096, 1 << 20])
    func stageFileChunksAreTheWholeFile(chunkBytes: Int) throws {
        let path = try Self.tiny.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try GGUFFile(path: path)
        let writer = try StageFile.writer(from: model, layers: 1 ..< 3, modelSHA256: "ab")
        let whole = writer.bytes()
        #expect(whole.count == writer.byteCount)
        var reader = writer.chunks(of: chunkBytes)
        #expect(reader.byteCount == whole.count)
        var joined: [UInt8] = []
        var sizes: [Int] = []
        while let chunk = try reader.next() {
            joined += chunk
            sizes.append(chunk.count)
        }
        #expect(joined == whole)
        #expect(sizes.dropLast().allSatisfy { $0 == chunkBytes } && (sizes.last ?? 0) <= chunkBytes)

        let stagePath = path + ".stage"
        defer { try? FileManager.default.removeItem(atPath: stagePath) }
        try Data(joined).write(to: URL(fileURLWithPath: stagePath))
        let stage = try GGUFFile(path: stagePath)
        #expect(StageFile.identity(of: stage)?.layers == 1 ..< 3)
        let names = try StageFile.tensorNames(in: model, layers: 1 ..< 3)
        #expect(stage.tensors.map(\.name) == names)
        for name in names {
            #expect(Array(stage.data(of: stage.tensorInfo(name)!)) == Array(model.data(of: model.tensorInfo(name)!)), "\(name)")
        }
    }
}
