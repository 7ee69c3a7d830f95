#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What a process can learn about its machine and itself: memory, CPU features.
public enum SystemInfo {
    /// Bytes the kernel estimates are available for new allocations (MemAvailable), or 0.
    public static func availableMemory() -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kb = UInt64(fields[1]) { return kb * 1024 }
        }
        return 0
    }

    /// The memory this process may use: the tightest of its memory cgroup's limit (v2's
    /// `memory.max`, v1's `memory.limit_in_bytes`, along the cgroup and its ancestors) and what
    /// the kernel says is available; 0 when neither is known.
    public static func memoryLimit() -> UInt64 {
        let available = availableMemory()
        guard let cgroup = cgroupMemoryLimit() else { return available }
        return available > 0 ? min(available, cgroup) : cgroup
    }

    /// The memory limit of this process's cgroup (v2, or v1's memory controller), or nil when
    /// there is none.
    public static func cgroupMemoryLimit(procRoot: String = "/proc/self") -> UInt64? {
        guard let cgroups = try? String(contentsOfFile: procRoot + "/cgroup", encoding: .utf8),
              let mountinfo = try? String(contentsOfFile: procRoot + "/mountinfo", encoding: .utf8) else { return nil }
        var limits: [UInt64] = []
        for line in cgroups.split(separator: "\n") {
            // "hierarchy-ID:controllers:path": v2 is "0::/path", v1's memory controller "N:memory:/path".
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0", parts[1].isEmpty, let mount = cgroupMount(mountinfo, v2: true) {
                limits += limitsAlong(path, mount: mount, file: "memory.max")
            } else if parts[1].split(separator: ",").contains("memory"), let mount = cgroupMount(mountinfo, v2: false) {
                limits += limitsAlong(path, mount: mount, file: "memory.limit_in_bytes")
            }
        }
        return limits.min()
    }

    /// The mount point and mounted root of the cgroup2 hierarchy, or of v1's memory controller.
    private static func cgroupMount(_ mountinfo: String, v2: Bool) -> (point: String, root: String)? {
        for line in mountinfo.split(separator: "\n") {
            // "id parent major:minor root mountpoint options... - fstype source superoptions"
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " "), tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let matches = v2 ? tail[0] == "cgroup2" : tail[0] == "cgroup" && tail[2].split(separator: ",").contains("memory")
            if matches { return (String(fields[4]), String(fields[3])) }
        }
        return nil
    }

    /// The limits set in `file` for the cgroup at `path` and each ancestor visible in the mount
    /// ("max" and v1's huge "unlimited" numbers are no limit).
    private static func limitsAlong(_ path: String, mount: (point: String, root: String), file: String) -> [UInt64] {
        var relative = path
        if mount.root != "/", relative.hasPrefix(mount.root) { relative = String(relative.dropFirst(mount.root.count)) }
        var limits: [UInt64] = []
        var components = relative.split(separator: "/").map(String.init)
        while true {
            let dir = ([mount.point] + components).joined(separator: "/")
            if let text = try? String(contentsOfFile: dir + "/" + file, encoding: .utf8),
               let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), value < 1 << 60 {
                limits.append(value)
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return limits
    }

    /// Resident memory of this process in bytes (file-backed pages included), or 0.
    public static func residentBytes() -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = UInt64(fields[1]) else { return 0 }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The SIMD features that matter to the kernels, as /proc/cpuinfo names them.
    public static func cpuFeatures() -> [String] {
        let interesting = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                           "avx_vnni", "asimd", "asimddp", "sve"]
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") || line.hasPrefix("Features") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            return interesting.filter(flags.contains)
        }
        return []
    }
}
