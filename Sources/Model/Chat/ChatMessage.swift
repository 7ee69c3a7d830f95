/// One turn of a conversation, as in the OpenAI chat API: `role` is usually "system", "user"
/// or "assistant"; templates write other roles through unchanged where they can.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}
