import Foundation

/// Progress of a long pass over bytes (hashing a model, streaming a stage file), as log lines:
/// nothing for a pass that ends within a moment, then a line every few seconds with the bytes
/// done, the rate and the time left, and a last line when it ends.
public struct ByteProgress {
    private let what: String
    private let total: Int
    private let log: (String) -> Void
    private let started = ContinuousClock.now
    private var lastLine: ContinuousClock.Instant?
    private let quiet: Duration
    private let every: Duration

    /// `what` names the pass ("hashing model.gguf"); lines go to `log`.
    public init(_ what: String, total: Int, quiet: Duration = .seconds(1), every: Duration = .seconds(3),
                log: @escaping (String) -> Void) {
        self.what = what; self.total = total; self.quiet = quiet; self.every = every; self.log = log
    }

    /// `done` bytes of `total` are through.
    public mutating func update(_ done: Int) {
        let now = ContinuousClock.now
        guard now - started >= quiet, lastLine.map({ now - $0 >= every }) ?? true else { return }
        lastLine = now
        log(line(done, at: now))
    }

    /// The pass is over: one last line, if any was shown.
    public func finish(_ done: Int) {
        if lastLine != nil { log(line(done, at: .now)) }
    }

    private func line(_ done: Int, at now: ContinuousClock.Instant) -> String {
        let seconds = max((now - started).totalSeconds, 1e-9)
        let rate = Double(done) / seconds
        var text = "\(what): \(Self.size(done)) of \(Self.size(total)), \(String(format: "%.0f", rate / 1e6)) MB/s"
        if done < total, rate > 0 { text += String(format: ", about %.0f s left", Double(total - done) / rate) }
        return text
    }

    /// "512 MiB", "1.25 GiB".
    public static func size(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.2f GiB", Double(n) / Double(1 << 30)) : String(format: "%.0f MiB", Double(n) / Double(1 << 20))
    }
}
