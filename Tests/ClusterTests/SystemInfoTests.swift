import Foundation
import StrataWorker
import Testing

/// A worker's memory limit from its cgroup: v2's `memory.max` and v1's `memory.limit_in_bytes`,
/// the tightest along the cgroup and its ancestors, found through /proc/self/cgroup and
/// /proc/self/mountinfo (given here as files under a fake root).
struct SystemInfoTests {
    private func fakeRoot(cgroup: String, mountinfo: String, files: [String: String]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("strata-proc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        try cgroup.write(toFile: root + "/proc/cgroup", atomically: true, encoding: .utf8)
        try mountinfo.replacingOccurrences(of: "ROOT", with: root).write(toFile: root + "/proc/mountinfo", atomically: true, encoding: .utf8)
        for (path, text) in files {
            let full = root + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        return root
    }

    @Test func cgroupV2MemoryMaxAlongTheAncestors() throws {
        let mounts = "30 23 0:26 / ROOT/cg rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
        let root = try fakeRoot(cgroup: "0::/workers/w1\n", mountinfo: mounts,
                                files: ["/cg/workers/w1/memory.max": "314572800\n", "/cg/workers/memory.max": "max\n"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(SystemInfo.cgroupMemoryLimit(procRoot: root + "/proc") == 314_572_800)
        try "200000000\n".write(toFile: root + "/cg/workers/memory.max", atomically: true, encoding: .utf8)
        #expect(SystemInfo.cgroupMemoryLimit(procRoot: root + "/proc") == 200_000_000)
    }

    @Test func cgroupV1MemoryController() throws {
        let mounts = """
            35 25 0:30 / ROOT/memory rw,nosuid - cgroup cgroup rw,memory
            36 25 0:31 / ROOT/cpu rw,nosuid - cgroup cgroup rw,cpu
            37 25 0:32 / ROOT/unified rw,nosuid - cgroup2 cgroup2 rw

            """
        let root = try fakeRoot(cgroup: "5:cpu:/\n4:memory:/jobs/abc\n0::/\n", mountinfo: mounts, files: [
            "/memory/jobs/abc/memory.limit_in_bytes": "9223372036854771712\n",  // unlimited
            "/memory/jobs/memory.limit_in_bytes": "1073741824\n",
            "/cpu/jobs/abc/memory.limit_in_bytes": "5\n",  // not the memory controller: ignored
        ])
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(SystemInfo.cgroupMemoryLimit(procRoot: root + "/proc") == 1 << 30)
    }

    @Test func noLimitAnywhere() throws {
        let root = try fakeRoot(cgroup: "0::/\n", mountinfo: "30 23 0:26 / ROOT/cg rw - cgroup2 cgroup2 rw\n",
                                files: ["/cg/cgroup.procs": "1\n"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(SystemInfo.cgroupMemoryLimit(procRoot: root + "/proc") == nil)
    }
}
