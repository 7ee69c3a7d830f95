import ArgumentParser
import Foundation
import StrataModel

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text as a JSON array.")

    @Option(help: "Path to a GGUF model file.")
    var model: String

    @Option(help: "The text to tokenize.")
    var text: String?

    @Option(help: "A file whose bytes are tokenized exactly as they are.")
    var file: String?

    @Flag(help: "Prepend BOS when the vocabulary asks for it.")
    var addBOS = false

    @Flag(help: "Treat special-token text (e.g. <|im_start|>) as plain text.")
    var noParseSpecial = false

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give exactly one of --text and --file") }
    }

    func run() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: model))
        let ids: [Int32]
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read '\(file)'")
            }
            ids = tokenizer.encode(bytes: [UInt8](data), addBOS: addBOS && tokenizer.addBOS, parseSpecial: !noParseSpecial)
        } else {
            ids = tokenizer.encode(text!, addBOS: addBOS && tokenizer.addBOS, parseSpecial: !noParseSpecial)
        }
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
