/// The kind byte of a frame header: which message the body holds.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    case hello = 1
    case assign = 2
    case loadReport = 3
    case weightChunk = 4
    case forward = 5
    case result = 6
    case release = 7
    case heartbeat = 8
    case shutdown = 9
    /// Frozen: an error frame's body is the same in every protocol version.
    case error = 255
}

extension WireMessage {
    /// The kind byte this message is sent with.
    public var kind: MessageKind {
        switch self {
        case .hello: .hello
        case .assign: .assign
        case .loadReport: .loadReport
        case .weightChunk: .weightChunk
        case .forward: .forward
        case .result: .result
        case .release: .release
        case .heartbeat: .heartbeat
        case .shutdown: .shutdown
        case .error: .error
        }
    }
}
