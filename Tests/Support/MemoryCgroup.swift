import Foundation

/// A memory cgroup with a hard limit, for processes started in it (`ChildProcess.strata(…,
/// cgroup:)`): v1's memory controller at /sys/fs/cgroup/memory where it is mounted, else cgroup
/// v2 (`memory.max`) at /sys/fs/cgroup. Needs root. Removed by `remove()` once its processes
/// have exited.
public final class MemoryCgroup: @unchecked Sendable {
    public let path: String
    public let isV1: Bool
    public let limitBytes: Int

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, limitBytes: Int) throws {
        let fm = FileManager.default
        let v1 = "/sys/fs/cgroup/memory"
        isV1 = fm.fileExists(atPath: v1 + "/memory.limit_in_bytes")
        let root = isV1 ? v1 : "/sys/fs/cgroup"
        guard isV1 || fm.fileExists(atPath: root + "/cgroup.subtree_control") else {
            throw Unavailable(description: "no memory cgroup controller (v1 at \(v1) or v2 at \(root))")
        }
        path = root + "/" + name
        self.limitBytes = limitBytes
        do {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: false)
            if !isV1 { try? "+memory".write(toFile: root + "/cgroup.subtree_control", atomically: false, encoding: .utf8) }
            try "\(limitBytes)".write(toFile: path + (isV1 ? "/memory.limit_in_bytes" : "/memory.max"), atomically: false, encoding: .utf8)
        } catch {
            throw Unavailable(description: "cannot make memory cgroup \(path): \(error)")
        }
    }

    public var procsFile: String { path + "/cgroup.procs" }

    /// The most memory the cgroup has used (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`), or nil.
    public var peakBytes: Int? {
        let file = path + (isV1 ? "/memory.max_usage_in_bytes" : "/memory.peak")
        return (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Times the kernel's OOM killer struck in the cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    public var oomKills: Int {
        let text = (try? String(contentsOfFile: path + (isV1 ? "/memory.oom_control" : "/memory.events"), encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.split(separator: " ").last ?? "") ?? 0
        }
        return 0
    }

    /// Removes the cgroup (its processes must have exited).
    public func remove() {
        for _ in 0 ..< 50 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(100_000)
        }
    }
}
