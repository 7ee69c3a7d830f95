import Foundation

/// Where the package, the reference outputs the tests compare against (`Tests/References`, in the
/// repository), the cached default model and the built `strata` binary are.
public enum TestPaths {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let refs = packageRoot.appendingPathComponent("Tests/References")
    public static let defaultModel = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    public static func ref(_ name: String) -> URL { refs.appendingPathComponent(name) }

    /// The built `strata` binary, beside the test bundle.
    public static var binary: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("strata").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("strata")
    }
}
