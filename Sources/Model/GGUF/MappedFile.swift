#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. The pages are read lazily by the kernel: a model file
/// is never copied into our memory, and a worker touches only the tensors of its own layers.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The mapped bytes; valid for the life of this object.
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws(GGUFError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (the check below then
        // refuses it); it changes nothing for a regular file.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw .truncated(what: "header", offset: 0, needed: 24, available: 0) }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// A read-only copy of `data` in memory, named `name` in errors: a file's bytes without the
    /// file (the fuzzer reads thousands of inputs a second this way).
    public init(copying data: UnsafeRawBufferPointer, name: String) throws(GGUFError) {
        path = name
        guard data.count > 0 else { throw .truncated(what: "header", offset: 0, needed: 24, available: 0) }
        guard let base = mmap(nil, data.count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw .cannotOpen(path: name, reason: "mmap: " + String(cString: strerror(errno)))
        }
        base.copyMemory(from: data.baseAddress!, byteCount: data.count)
        mprotect(base, data.count, PROT_READ)
        bytes = UnsafeRawBufferPointer(start: base, count: data.count)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) }
}
