#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CZeroMQ

extension ZMQSocket {
    /// Sends all frames as one multipart message. Returns false only when `dontWait` and the
    /// message could not be queued (EAGAIN) — then nothing was sent. Retries on EINTR.
    ///
    /// Each frame is copied into a `zmq_msg_t` of exactly its size, so frames of any length
    /// (including empty ones) go out whole. libzmq queues a multipart message atomically: the
    /// high-water mark is checked on the first frame, and if a later frame is refused it rolls
    /// back the frames already queued, so "not queued" really means none of it.
    ///
    /// Without `dontWait` this blocks until the message is queued; if a send timeout
    /// (``setSendTimeout(milliseconds:)``) expires first, the EAGAIN is thrown. An empty
    /// `frames` throws EINVAL: there is no such thing as a message of no frames.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        let socket = try live("send")
        guard !frames.isEmpty else { throw ZMQError(operation: "send", code: EINVAL) }
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < last { flags |= ZMQ_SNDMORE }
            guard zmq_msg_init_size(message, frame.count) == 0 else { throw .last("zmq_msg_init_size") }
            if !frame.isEmpty {
                frame.withUnsafeBytes { bytes in
                    zmq_msg_data(message).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                }
            }
            // On success libzmq takes the message's contents and leaves `message` empty; on
            // failure it is still ours and must be closed.
            while zmq_msg_send(message, socket, flags) < 0 {
                let code = zmq_errno()
                if code == EINTR { continue }
                zmq_msg_close(message)
                if code == EAGAIN && dontWait { return false }
                throw ZMQError(operation: "send", code: code)
            }
        }
        return true
    }

    /// Sends one single-frame message; see ``send(_:dontWait:)-(([[UInt8]],_))``.
    @discardableResult
    public func send(_ frame: [UInt8], dontWait: Bool = false) throws(ZMQError) -> Bool {
        try send([frame], dontWait: dontWait)
    }

    /// Receives one whole multipart message; nil when `dontWait` (or a receive timeout) found
    /// none. Retries on EINTR.
    ///
    /// Frames are read with `zmq_msg_recv` into a `zmq_msg_t` and copied out at their real
    /// size, so nothing is ever truncated. libzmq delivers a multipart message atomically, so
    /// once its first frame is here the rest are too: they are read without waiting, and if one
    /// were missing that would be thrown as EAGAIN rather than blocking mid-message. Every
    /// `zmq_msg_t` is closed, on errors as well.
    public func receive(dontWait: Bool = false) throws(ZMQError) -> [[UInt8]]? {
        var unused: String?
        return try receive(dontWait: dontWait, userID: &unused)
    }

    /// Receives like ``receive(dontWait:)``, with the CurveZMQ public key (Z85) that the
    /// sender's handshake was authenticated with by this context's ``ZAPHandler``: nil for a
    /// connection without one (a plain link, or inproc).
    public func receiveAuthenticated(dontWait: Bool = false) throws(ZMQError) -> (frames: [[UInt8]], userID: String?)? {
        var userID: String?
        guard let frames = try receive(dontWait: dontWait, userID: &userID) else { return nil }
        return (frames, userID)
    }

    private func receive(dontWait: Bool, userID: inout String?) throws(ZMQError) -> [[UInt8]]? {
        let socket = try live("receive")
        var frames: [[UInt8]] = []
        var more = true
        while more {
            let flags: Int32 = dontWait || !frames.isEmpty ? ZMQ_DONTWAIT : 0
            zmq_msg_init(message)  // cannot fail: it only zeroes the structure
            while zmq_msg_recv(message, socket, flags) < 0 {
                let code = zmq_errno()
                if code == EINTR { continue }
                zmq_msg_close(message)
                if code == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError(operation: "receive", code: code)
            }
            // (A ROUTER's routing-id frame is its own and carries no metadata: read every frame.)
            if let id = zmq_msg_gets(message, "User-Id"), id.pointee != 0 { userID = String(cString: id) }
            let size = zmq_msg_size(message)
            frames.append(size == 0 ? [] : [UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(message), count: size)))
            more = zmq_msg_more(message) != 0
            zmq_msg_close(message)
        }
        return frames
    }
}
