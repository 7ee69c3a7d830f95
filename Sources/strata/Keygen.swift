import ArgumentParser
import ZeroMQ

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CurveZMQ key pair: NAME.key (the secret, mode 0600) and NAME.pub.",
        discussion: """
            The secret key file is a worker's or coordinator's identity; the public key is what \
            its peers are told to trust. Each file holds one key as 40 Z85 characters.
            """)

    @Argument(help: "The files' path without extension, e.g. /etc/strata/worker-1.")
    var name: String

    @Flag(help: "Replace key files that exist.")
    var force = false

    func run() throws {
        let keys = try CurveKeyPair.generate()
        do { try keys.write(to: name, replacing: force) } catch {
            if case .unwritable = error, !force { throw ValidationError("\(error.description) (--force replaces key files)") }
            throw ValidationError(error.description)
        }
        print("wrote \(name).key (secret, mode 0600) and \(name).pub")
        print("public key: \(ZMQ.z85Encode(keys.publicKey)!)")
    }
}
