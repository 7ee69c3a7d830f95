import Foundation

/// A cgroup that processes are started in (`ChildProcess.strata(…, cgroup:)`).
public protocol ProcessCgroup: AnyObject, Sendable {
    /// The file a process writes its pid to, to move itself in.
    var procsFile: String { get }
}

extension MemoryCgroup: ProcessCgroup {}

/// A real slow disk for the processes started in it: an ext4 file system on a loop device,
/// mounted `sync` (a write(2) returns once its bytes are on the device), and a blkio cgroup
/// that throttles writes to that device: v1's `blkio.throttle.write_bps_device` where mounted,
/// else v2's `io.max`. Needs root. `remove()` unmounts and deletes it all once its processes
/// have exited.
public final class ThrottledDisk: ProcessCgroup, @unchecked Sendable {
    /// Where the file system is mounted.
    public let mountPoint: String
    public let procsFile: String
    private let group: String
    private let image: String
    private let device: String
    private static let setup = NSLock()

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    public init(name: String, megabytes: Int = 64, writeBytesPerSecond: Int) throws {
        let fm = FileManager.default
        let base = fm.temporaryDirectory.appendingPathComponent(name).path
        image = base + ".img"
        mountPoint = base
        let v1 = "/sys/fs/cgroup/blkio"
        let isV1 = fm.fileExists(atPath: v1 + "/blkio.throttle.write_bps_device")
        group = (isV1 ? v1 : "/sys/fs/cgroup") + "/" + name
        procsFile = group + "/cgroup.procs"
        try fm.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard fm.createFile(atPath: image, contents: nil), let file = FileHandle(forWritingAtPath: image) else {
            throw Unavailable(description: "cannot create \(image)")
        }
        try file.truncate(atOffset: UInt64(megabytes) << 20)
        try file.close()
        // (One at a time: two `losetup --find` at once may pick the same free device.)
        let image = image
        device = try Self.setup.withLock { try Self.run("losetup", "--find", "--show", image) }.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            _ = try Self.run("mkfs.ext4", "-q", "-F", device)
            _ = try Self.run("mount", "-o", "sync", device, mountPoint)
            // "7:0": the device's major and minor numbers, as the cgroup files name it.
            let numbers = try String(contentsOfFile: "/sys/block/\((device as NSString).lastPathComponent)/dev", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try fm.createDirectory(atPath: group, withIntermediateDirectories: false)
            if isV1 {
                try "\(numbers) \(writeBytesPerSecond)".write(toFile: group + "/blkio.throttle.write_bps_device", atomically: false, encoding: .utf8)
            } else {
                try? "+io".write(toFile: "/sys/fs/cgroup/cgroup.subtree_control", atomically: false, encoding: .utf8)
                try "\(numbers) wbps=\(writeBytesPerSecond)".write(toFile: group + "/io.max", atomically: false, encoding: .utf8)
            }
        } catch {
            remove()
            throw Unavailable(description: "cannot make a slow disk of \(device) with cgroup \(group): \(error)")
        }
    }

    /// Unmounts and deletes the file system, and removes the cgroup (its processes must have exited).
    public func remove() {
        _ = try? Self.run("umount", mountPoint)
        _ = try? Self.run("losetup", "--detach", device)
        try? FileManager.default.removeItem(atPath: image)
        rmdir(mountPoint)
        for _ in 0 ..< 50 {
            if rmdir(group) == 0 || errno == ENOENT { return }
            usleep(100_000)
        }
    }

    /// Runs a command found on the PATH; its standard output, or an error with what it printed.
    private static func run(_ command: String, _ arguments: String...) throws -> String {
        let child = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), [command] + arguments)
        guard child.wait(timeout: .seconds(60)) == 0 else {
            throw Unavailable(description: "\(command) \(arguments.joined(separator: " ")) failed: \(child.stderr)")
        }
        return child.stdout
    }
}
