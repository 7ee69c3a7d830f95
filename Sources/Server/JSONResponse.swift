import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A JSON answer.
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encodeJSON(value))))
}

/// JSON with sorted keys and unescaped slashes (stable, readable answers); an encoding that
/// fails becomes a server error object rather than a crash.
func encodeJSON(_ value: some Encodable) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(value)) ?? Data(#"{"error":{"message":"cannot encode the response","type":"server_error"}}"#.utf8))
}
