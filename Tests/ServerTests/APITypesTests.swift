import Foundation
import StrataAPI
import Testing

/// The client and the server share the API's types: what one encodes the other decodes, in
/// the shapes OpenAI's clients send and read.
@Suite struct APITypesTests {
    @Test func aClientRequestIsWhatTheServerReads() throws {
        var fields = SamplingFields()
        fields.max_tokens = Number(16)
        fields.temperature = 0.5
        fields.seed = Number(-3)
        fields.stop = .list(["\n\n"])
        fields.stream = true
        let request = ChatRequest(messages: [.init(role: "user", content: "Hi")], fields: fields)
        let json = try JSONEncoder().encode(request)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        // Flat, as OpenAI's API has it; whole numbers as integers.
        #expect(object["max_tokens"] as? Int == 16 && object["seed"] as? Int == -3 && object["stream"] as? Bool == true)
        #expect(String(decoding: json, as: UTF8.self).contains(#""max_tokens":16"#))
        let back = try JSONDecoder().decode(ChatRequest.self, from: json)
        #expect(back.messages.map(\.role) == ["user"] && back.messages.first?.content?.text == "Hi")
        #expect(back.fields.max_tokens?.value == 16 && back.fields.temperature == 0.5 && back.fields.stop?.strings == ["\n\n"])

        let completion = CompletionRequest(prompt: .tokens([1, 2, 3]), fields: fields)
        guard case let .tokens(ids) = try JSONDecoder().decode(CompletionRequest.self, from: JSONEncoder().encode(completion)).prompt else {
            Issue.record("token prompt lost"); return
        }
        #expect(ids == [1, 2, 3])
    }

    @Test func answersRoundTripWithTheirNulls() throws {
        let chunk = ChatChunk(id: "c", created: 1, model: "m", choices: [.init(delta: .init(content: "x"), finish_reason: .init(nil))])
        let json = try JSONEncoder().encode(chunk)
        #expect(String(decoding: json, as: UTF8.self).contains(#""finish_reason":null"#))
        let back = try JSONDecoder().decode(ChatChunk.self, from: json)
        #expect(back.choices.first?.delta.content == "x" && back.choices.first?.finish_reason.value == nil)
        let error = try JSONDecoder().decode(ErrorBody.self, from: Data(#"{"error": {"message": "busy", "type": "t", "param": null, "code": "c"}}"#.utf8))
        #expect(error.error.message == "busy" && error.error.param.value == nil && error.error.code.value == "c")
    }
}
