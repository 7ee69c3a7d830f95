import ArgumentParser
import Foundation
import StrataCoordinator
import StrataModel
import StrataWorker

/// The partition a coordinator would pick, on paper: for a model file or a named shape (no
/// file needed, so a 70B plan costs nothing), on workers of given memory.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a model would be cut into stages on workers of given memory, without the workers or (with --shape) the file.",
        discussion: """
            Runs the coordinator's planner (`--partition`) and the workers' KV cache budget on the \
            model's real layer sizes, then estimates what the cluster needs and does: stage files \
            to stream, and decode speed from each worker's memory bandwidth (decode reads every \
            weight once per token). Shapes: \(ModelShape.named.map(\.name).joined(separator: ", ")).
            """)

    @Option(help: "A GGUF model file.")
    var model: String?
    @Option(help: "A named model shape, instead of a file.")
    var shape: String?
    @Option(help: "Weight type of the shape's matrices (q4_k is about a Q4_K_M file's size, which mixes in some Q6_K).")
    var type = "q4_k"

    @Option(help: "Workers.")
    var workers: Int
    @Option(help: "Memory of each worker, e.g. 8G, 7.5G, 800M; or one per worker, comma-separated.")
    var memory: String

    @Option(help: "Tokens per sequence.")
    var context = 2048
    @Option(help: "memory, even, or explicit:0-9,10-19,…")
    var partition = "memory"
    @Option(help: "Each worker's memory bandwidth in GB/s, for the decode estimate.")
    var bandwidth = 20.0
    @Option(name: .customLong("hop-ms"), help: "Latency each hop between stages adds, in milliseconds.")
    var hopMilliseconds = 0.5

    func run() throws {
        let (layerWeights, headBytes, config) = try sizes()
        let memories = try parseMemory()
        let layerBytes = layerCosts(weights: layerWeights, kvDim: config.kvDim, context: context)
        let ranges: [Range<Int>]
        do {
            ranges = try partitionLayers(try PartitionStrategy(parsing: partition),
                                         layerBytes: layerBytes, memory: memories)
        } catch {
            throw ValidationError("\(error)")
        }
        let headroom = Stage.headroomBytes(config: config)
        print("\(name): \(config.nLayers) layers, \(formatBytes(UInt64(layerWeights.reduce(0, +)))) of layer weights, " +
              "\(formatBytes(UInt64(headBytes))) of embedding and output head (the coordinator's)")
        print("\(workers) workers, context \(context), partition \(partition)\n")
        print("stage  layers   memory     weights    working    KV cache                        stream at 1 / 10 Gbit/s")
        var stageBytes: [Int] = []
        for (i, r) in ranges.enumerated() {
            let weights = r.reduce(0) { $0 + layerWeights[$1] }
            stageBytes.append(weights)
            let shape = KVPageShape(layers: r.count, kvDim: config.kvDim)
            let pages = max(0, Int(memories[i]) - weights - headroom) / shape.bytes
            let positions = pages * shape.rows
            let kv = "\(formatBytes(UInt64(pages * shape.bytes))), \(positions) positions (\(positions / context) × \(context))"
            func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
            print(pad("\(i)", 5) + "  " + pad("\(r.lowerBound)-\(r.upperBound - 1)", 7) + "  " + pad(formatBytes(memories[i]), 9) + "  " +
                  pad(formatBytes(UInt64(weights)), 9) + "  " + pad(formatBytes(UInt64(headroom)), 9) + "  " + pad(kv, 30) + "  " +
                  String(format: "%.0f s / %.1f s", Double(weights) * 8 / 1e9, Double(weights) * 8 / 10e9))
        }
        let total = stageBytes.reduce(0, +)
        // The coordinator streams every stage at once over its one link.
        print(String(format: "\nstreaming every stage from one coordinator: %.0f s at 1 Gbit/s, %.0f s at 10 Gbit/s (once; then cached)",
                     Double(total) * 8 / 1e9, Double(total) * 8 / 10e9))
        // Decode: each stage reads its weights once per token, one after another, plus the hops.
        let seconds = stageBytes.reduce(0.0) { $0 + Double($1) / (bandwidth * 1e9) } + Double(ranges.count) * hopMilliseconds / 1000
        print(String(format: "decode, one stream: about %.2f tokens/s (%.0f ms per token: weights at %.0f GB/s per worker, %d hops of %.1f ms)",
                     1 / seconds, seconds * 1000, bandwidth, ranges.count, hopMilliseconds))
        print(String(format: "with the pipeline full (a sequence in every stage): about %.1f tokens/s in all", Double(ranges.count) / seconds))
    }

    private var name: String { model.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "\(shape ?? "?") (\(type))" }

    /// Weight bytes of each layer, of the embedding and head, and the model's configuration.
    private func sizes() throws -> ([Int], Int, LlamaConfig) {
        if let model {
            let file = try GGUFFile(path: model)
            let config = try LlamaConfig(gguf: file)
            let layers = try (0 ..< config.nLayers).map { l in try StageFile.weightBytes(in: file, layers: l ..< l + 1) }
            let head = StageFile.coordinatorBytes(in: file)
            return (layers, head, config)
        }
        guard let shape, let s = ModelShape.named(shape) else {
            throw ValidationError("give --model FILE or --shape NAME (\(ModelShape.named.map(\.name).joined(separator: ", ")))")
        }
        guard let weightType = GGMLType(weightName: type),
              let matrices = weightType.byteCount(elements: s.layerMatrixElements),
              let embedding = weightType.byteCount(elements: s.vocab * s.dim) else {
            throw ValidationError("--type \(type) is not a weight type for this shape")
        }
        let layer = matrices + 2 * s.dim * 4  // and two f32 norms
        let config = LlamaConfig(dim: s.dim, hiddenDim: s.ffn, nLayers: s.layers, nHeads: s.heads, nKVHeads: s.kvHeads,
                                 vocabSize: s.vocab, contextLength: s.context)
        return ([Int](repeating: layer, count: s.layers), 2 * embedding + s.dim * 4, config)
    }

    private func parseMemory() throws -> [UInt64] {
        let items = memory.split(separator: ",").map { String($0) }
        guard items.count == 1 || items.count == workers else {
            throw ValidationError("--memory gives \(items.count) sizes for \(workers) workers")
        }
        let sizes = try items.map { item throws -> UInt64 in
            let units: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40]
            let unit = item.last.flatMap { units[Character($0.uppercased())] }
            guard let number = Double(unit == nil ? item : String(item.dropLast())), number > 0 else {
                throw ValidationError("--memory \(item) is not a size like 8G or 800M")
            }
            return UInt64(number * (unit ?? 1))
        }
        return items.count == 1 ? [UInt64](repeating: sizes[0], count: workers) : sizes
    }
}
