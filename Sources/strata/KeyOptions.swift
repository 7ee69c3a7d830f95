import ArgumentParser
import Foundation
import ZeroMQ

/// This process's CurveZMQ identity, for `worker` and `coordinator`: its secret key file, or
/// an explicit `--insecure`.
///
/// The key is looked for in `--key`, then `$STRATA_KEY`, then `$CREDENTIALS_DIRECTORY/strata.key`
/// (systemd's `LoadCredential=strata.key:…`); a Kubernetes Secret mounted as a file is given
/// with `--key` or `$STRATA_KEY`.
struct KeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This process's secret key file (`strata keygen NAME` writes NAME.key and NAME.pub).",
                               discussion: "Default: $STRATA_KEY, else $CREDENTIALS_DIRECTORY/strata.key (systemd's LoadCredential=)."))
    var key: String?

    @Flag(help: "Plain links, with no keys: anyone who reaches a port can read the activations and take the cluster over. Every side must say it.")
    var insecure = false

    func validate() throws {
        if insecure, key != nil { throw ValidationError("give --key or --insecure, not both") }
    }

    /// CurveZMQ with the key found, or plain links with `--insecure`; an error says how to
    /// give a key.
    func security() throws -> LinkSecurity {
        if insecure { return .insecure }
        guard let path = key ?? environment("STRATA_KEY") ?? credential("strata.key") else {
            throw ValidationError("""
                no key: give --key FILE (or $STRATA_KEY), a secret key file made with `strata keygen NAME`; \
                or run every side with --insecure for plain links
                """)
        }
        do { return .curve(try CurveKeyPair.load(secretFile: path)) } catch { throw ValidationError("--key: \(error)") }
    }
}

/// An environment variable, when set and not empty.
func environment(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
}

/// The path of a systemd credential (`LoadCredential=NAME:…`) when the service has it.
func credential(_ name: String) -> String? {
    guard let directory = environment("CREDENTIALS_DIRECTORY") else { return nil }
    let path = (directory as NSString).appendingPathComponent(name)
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// Public keys from a comma-separated list: each a `.pub` file, a directory (its `*.pub`
/// files), or a key's 40 Z85 characters. `option` names the flag in errors.
func publicKeys(_ list: String, option: String) throws -> [[UInt8]] {
    var keys: [[UInt8]] = []
    for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: item, isDirectory: &isDirectory), isDirectory.boolValue {
            let files = try FileManager.default.contentsOfDirectory(atPath: item).filter { $0.hasSuffix(".pub") }.sorted()
            guard !files.isEmpty else { throw ValidationError("\(option): \(item) holds no .pub files") }
            for file in files { keys.append(try publicKey((item as NSString).appendingPathComponent(file), option: option)) }
        } else {
            keys.append(try publicKey(item, option: option))
        }
    }
    return keys
}

/// One public key: a `.pub` file or the key itself.
func publicKey(_ fileOrKey: String, option: String) throws -> [UInt8] {
    do { return try CurveKeyPair.loadPublic(fileOrKey) } catch { throw ValidationError("\(option): \(error)") }
}

/// Worker endpoints as `--workers` gives them, comma-separated, each `ENDPOINT` or
/// `ENDPOINT=KEY` (the worker's `.pub` file or its key): the endpoints in order, and the keys
/// given.
func workerEndpoints(_ list: String, option: String) throws -> (endpoints: [String], keys: [String: [UInt8]]) {
    var endpoints: [String] = [], keys: [String: [UInt8]] = [:]
    for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
        // An endpoint has no '=', so the first one ends it (a Z85 key may hold others).
        guard let equals = item.firstIndex(of: "=") else {
            endpoints.append(item)
            continue
        }
        let endpoint = String(item[..<equals])
        endpoints.append(endpoint)
        keys[endpoint] = try publicKey(String(item[item.index(after: equals)...]), option: "\(option) \(endpoint)")
    }
    return (endpoints, keys)
}
