import Foundation
import Synchronization
import ZeroMQ

/// The CurveZMQ keys of the clusters tests make: links are encrypted in tests as they are by
/// default. One coordinator key pair for the whole test process, and one per worker address, so
/// that a worker started again on its address is the same worker to its coordinator.
public enum TestKeys {
    /// The coordinator's keys, for every cluster of this test process.
    public static let coordinator: CurveKeyPair = try! CurveKeyPair.generate()

    /// Where workers' secret key files are written (a private directory of this process).
    static let directory: String = {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("strata-test-keys.XXXXXX").utf8CString)
        return String(cString: mkdtemp(&template)!)
    }()

    /// The coordinator's secret key file, for `strata coordinator --key`.
    public static let coordinatorKeyFile: String = {
        let base = (directory as NSString).appendingPathComponent("coordinator")
        try! coordinator.write(to: base)
        return base + ".key"
    }()

    private static let workers = Mutex<[String: (keys: CurveKeyPair, file: String)]>([:])

    /// A fresh key pair with its secret key file.
    public static func makeWorkerKeys() throws -> (keys: CurveKeyPair, file: String) {
        let keys = try CurveKeyPair.generate()
        let base = (directory as NSString).appendingPathComponent(UUID().uuidString)
        try keys.write(to: base)
        return (keys, base + ".key")
    }

    /// The keys of the worker listening on `endpoint`, if one was started there.
    static func worker(at endpoint: String) -> (keys: CurveKeyPair, file: String)? { workers.withLock { $0[endpoint] } }

    static func remember(_ keys: (keys: CurveKeyPair, file: String), at endpoint: String) { workers.withLock { $0[endpoint] = keys } }

    /// Every worker's public key, by the endpoint it listens on.
    public static var workerKeys: [String: [UInt8]] { workers.withLock { $0.mapValues(\.keys.publicKey) } }

    /// `--workers` as the `strata coordinator` command takes it: each endpoint with its key.
    public static func workersOption(_ endpoints: [String]) -> String {
        endpoints.map { e in worker(at: e).map { "\(e)=\($0.keys.publicText)" } ?? e }.joined(separator: ",")
    }
}
