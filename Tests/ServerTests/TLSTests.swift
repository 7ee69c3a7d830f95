import Foundation
import Testing
import TestSupport

/// The HTTP API over TLS: `--tls-cert` and `--tls-key` make the server speak HTTPS only, and
/// `--server https://… --ca-file` makes `strata` a client that trusts that certificate.
@Suite(.serialized) struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 and its key, made by openssl in a new directory.
    static func certificate() throws -> (directory: String, cert: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("strata-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let cert = directory + "/cert.pem", key = directory + "/key.pem"
        let openssl = try ChildProcess(URL(fileURLWithPath: "/usr/bin/openssl"),
                                       ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                                        "-subj", "/CN=strata-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                                        "-keyout", key, "-out", cert])
        guard openssl.wait(timeout: .seconds(30)) == 0 else { throw OpenSSLError(description: openssl.stderr) }
        return (directory, cert, key)
    }

    @Test func theAPIServesHTTPSAndTheClientTrustsItsCA() throws {
        let tls = try Self.certificate()
        defer { try? FileManager.default.removeItem(atPath: tls.directory) }
        let server = try ServerProcess(["--tls-cert", tls.cert, "--tls-key", tls.key, "--api-key", "k"])
        #expect(server.url.hasPrefix("https://127.0.0.1:"), "\(server.url)")

        let health = try CurlResult.run(["--cacert", tls.cert, server.url + "/health"])
        #expect(health.status == 200, "\(health.body)")
        // The API key is asked for as before, over TLS.
        let refused = try CurlResult.run(["--cacert", tls.cert, server.url + "/v1/models"])
        #expect(refused.status == 401)
        // Plain HTTP to the same port gets no HTTP answer; nor does a client that does not trust
        // the certificate.
        let plain = try CurlResult.run([server.url.replacingOccurrences(of: "https://", with: "http://") + "/health"])
        #expect(plain.status != 200)
        let untrusting = try CurlResult.run([server.url + "/health"])
        #expect(untrusting.status == 0, "\(untrusting.body)")

        let answer = try ChildProcess.strata(["generate", "--server", server.url, "--ca-file", tls.cert, "--api-key", "k",
                                              "--prompt", "What is 2+2?", "--chat", "-n", "8", "--temperature", "0"])
        #expect(answer.wait(timeout: .seconds(60)) == 0, "\(answer.stderr)")
        #expect(!answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let distrust = try ChildProcess.strata(["generate", "--server", server.url, "--api-key", "k", "--prompt", "Hi", "-n", "2"])
        #expect(distrust.wait(timeout: .seconds(60)) != 0)
        #expect(distrust.stderr.lowercased().contains("certificate"), "\(distrust.stderr)")
    }

    @Test func anUnreadableCertificateIsNamed() throws {
        let tls = try Self.certificate()
        defer { try? FileManager.default.removeItem(atPath: tls.directory) }
        let run = try ChildProcess.strata(["local", "--workers", "1", "--model", TestPaths.defaultModel, "--threads", "1",
                                           "--http", "127.0.0.1:0", "--tls-cert", tls.directory + "/missing.pem", "--tls-key", tls.key])
        #expect(run.wait(timeout: .seconds(60)).map { $0 != 0 } == true)
        #expect(run.stderr.contains("--tls-cert") && run.stderr.contains("missing.pem"), "\(run.stderr)")
    }
}

struct OpenSSLError: Error, CustomStringConvertible { let description: String }
