import ArgumentParser
import StrataModel

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a GGUF file's metadata and tensor table.")

    @Argument(help: "Path to a GGUF file.")
    var file: String

    func run() throws {
        let gguf = try GGUFFile(path: file)
        print("GGUF v\(gguf.version): \(gguf.keys.count) metadata keys, \(gguf.tensors.count) tensors, alignment \(gguf.alignment), \(gguf.fileSize) bytes")
        print("\nmetadata:")
        for key in gguf.keys { print("  \(key) = \(gguf.metadata[key]!)") }
        print("\ntensors:")
        print("  name                                 type   dims                 bytes        offset")
        for t in gguf.tensors {
            let name = t.name.padding(36), type = t.type.description.padding(6)
            let dims = t.dims.map(String.init).joined(separator: " × ").padding(20)
            print("  \(name) \(type) \(dims) \(String(t.byteCount).padding(12)) \(gguf.dataOffset + t.offset)")
        }
        if let config = try? LlamaConfig(gguf: gguf) {
            print("\nllama: \(config.nLayers) layers, dim \(config.dim), ffn \(config.hiddenDim), \(config.nHeads) heads, \(config.nKVHeads) KV heads, head dim \(config.headDim), vocab \(config.vocabSize), context \(config.contextLength), rope base \(config.ropeTheta)")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
