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
