import ArgumentParser
import StrataModel
import StrataWire

// The library's enums as command-line values: parsed once, where the flags are, and named in
// `--help`; never strings checked later. (Enums whose raw values are not their names parse through
// `@Option(transform:)`.)

extension Precision: ExpressibleByArgument {}

extension ActivationType {
    /// The names `--activations` takes, as ggml names the types.
    static let names: [ActivationType: String] = [.f32: "f32", .f16: "f16", .bf16: "bf16", .q8_0: "q8_0"]

    var name: String { Self.names[self] ?? "\(rawValue)" }

    /// Parses a name for `@Option(transform:)`, naming the choices when it is none of them.
    static func parse(_ text: String) throws -> ActivationType {
        guard let match = names.first(where: { $0.value == text }) else {
            throw ValidationError("expected one of \(allCases.map(\.name).joined(separator: ", "))")
        }
        return match.key
    }
}
