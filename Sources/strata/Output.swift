import Foundation
import StrataModel

/// Writes to stdout without buffering delays, for streaming text.
func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

func writeErr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

extension Tokenizer {
    var bosText: String { bosID.flatMap(tokenText) ?? "" }
    var eosText: String { eosID.flatMap(tokenText) ?? "" }
}
