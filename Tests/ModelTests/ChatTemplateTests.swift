import Foundation
import StrataModel
import Testing

private let conversation = ChatFixtures.conversation.map { ChatMessage(role: $0.role, content: $0.content) }

private func render(_ t: ChatTemplate, bos: String = "<s>", eos: String = "</s>") -> String {
    t.render(conversation, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
}

// Golden strings: llama.cpp tests/test-chat-template.cpp `expected_output` (the legacy,
// non-Jinja path) for the same conversation, unless marked otherwise.

@Test func chatMLGolden() {
    #expect(render(.chatML) == "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n")
    let noPrompt = ChatTemplate.chatML.render(
        [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: false, bosToken: "", eosToken: "")
    #expect(noPrompt == "<|im_start|>user\nHi<|im_end|>\n")
}

@Test func llama3Golden() {
    #expect(render(.llama3, bos: "<|begin_of_text|>", eos: "<|eot_id|>") == "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
}

@Test func llama2FamilyGoldens() {
    // Mistral-7B-Instruct-v0.2 (old): no <<SYS>>, the system text leads the first message.
    #expect(render(.llama2) == "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]")
    // FusionNet: BOS text before each later [INST].
    #expect(render(.llama2SysBOS) == "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]")
    // vigogne: contents trimmed.
    #expect(render(.llama2SysStrip) == "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]")
    // No case in llama.cpp's test file; derived from llm_chat_apply_template (SYS, no BOS, no trim).
    #expect(render(.llama2Sys) == "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]")
    // The [INST] formats have no generation prompt: the text already ends with [/INST].
    let one = [ChatMessage(role: "user", content: "Hi")]
    #expect(ChatTemplate.llama2Sys.render(one, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
        == ChatTemplate.llama2Sys.render(one, addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>"))
}

@Test func mistralGoldens() {
    #expect(render(.mistralV1) == " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]")
    #expect(render(.mistralV3) == "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>[INST] Another question[/INST]")
    #expect(render(.mistralV3Tekken) == "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>[INST]Another question[/INST]")
    #expect(render(.mistralV7) == "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]")
}

@Test func zephyrGolden() {
    // No case in llama.cpp's current test file; derived from llm_chat_apply_template, whose
    // literal "<|endoftext|>" we write as the EOS text.
    #expect(render(.zephyr, bos: "<|endoftext|>", eos: "<|endoftext|>") == "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an assistant   <|endoftext|>\n<|user|>\nAnother question<|endoftext|>\n<|assistant|>\n")
    // zephyr-7b-beta's EOS is </s>; its own Jinja (trim_blocks) writes exactly this.
    let hf = ChatTemplate.zephyr.render(
        [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    #expect(hf == "<|user|>\nHi</s>\n<|assistant|>\n")
}

@Test func llama3TrimsOnlyASCIIWhitespaceLikeC() {
    let m = [ChatMessage(role: "user", content: "\u{A0}\t x \n\r\u{0B}\u{0C}")]
    #expect(ChatTemplate.llama3.render(m, addGenerationPrompt: false, bosToken: "", eosToken: "")
        == "<|start_header_id|>user<|end_header_id|>\n\n\u{A0}\t x<|eot_id|>")
}

@Test func smolLM2PromptMatchesTheReferencePrompts() {
    // Tests/References/greedy_f32.json "chat_2plus2" was made from exactly this text: llama.cpp's
    // legacy path does not run the Jinja, so SmolLM2's default system message is not added.
    let template = ChatTemplate.detect(from: ChatFixtures.smolLM2)
    #expect(template == .chatML)
    let prompt = template?.render([ChatMessage(role: "user", content: "What is 2+2?")],
                                  addGenerationPrompt: true, bosToken: "<|im_start|>", eosToken: "<|im_end|>")
    #expect(prompt == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
}

@Test func detectsRealTemplates() {
    let cases: [(String, ChatTemplate?, String)] = [
        (ChatFixtures.smolLM2, .chatML, "SmolLM2"),
        (ChatFixtures.openHermes, .chatML, "OpenHermes"),
        (ChatFixtures.llama3Instruct, .llama3, "Llama 3 Instruct"),
        (ChatFixtures.llama2Chat, .llama2SysStrip, "Llama 2 chat"),
        (ChatFixtures.mistral01, .llama2, "Mistral v0.1"),
        (ChatFixtures.mistral02, .llama2, "Mistral v0.2"),
        (ChatFixtures.fusionNet, .llama2SysBOS, "FusionNet"),
        (ChatFixtures.vigogne, .llama2SysStrip, "vigogne"),
        (ChatFixtures.mistralV1, .mistralV1, "Mistral v1"),
        (ChatFixtures.mistralV3, .mistralV3, "Mistral v3"),
        (ChatFixtures.mistralV3Tekken, .mistralV3Tekken, "Mistral v3-tekken"),
        (ChatFixtures.mistralV7, .mistralV7, "Mistral v7"),
        (ChatFixtures.zephyr7bBeta, .zephyr, "zephyr-7b-beta"),
        (ChatFixtures.zephyrEndOfText, .zephyr, "zephyr, literal <|endoftext|>"),
        // Formats we do not render: never mistaken for one we do.
        (ChatFixtures.gemma, nil, "Gemma"),
        (ChatFixtures.phi3, nil, "Phi-3"),
        (ChatFixtures.phi4, nil, "phi-4"),
        (ChatFixtures.glmEdge, nil, "GLM-Edge"),
        (ChatFixtures.commandR, nil, "Command-R"),
        ("{{ messages }}", nil, "no markers"),
        ("", nil, "empty"),
    ]
    for (jinja, expected, name) in cases {
        #expect(ChatTemplate.detect(from: jinja) == expected, "\(name)")
    }
}

@Test func detectAcceptsATemplateNameAsTheWholeString() {
    for t in ChatTemplate.allCases {
        #expect(ChatTemplate.detect(from: t.rawValue) == t)
    }
}

@Test func resolvePrefersAnExplicitName() throws {
    #expect(try ChatTemplate.resolve(named: "llama3", jinja: ChatFixtures.smolLM2) == .llama3)
    #expect(try ChatTemplate.resolve(named: "ChatML", jinja: nil) == .chatML)
    #expect(try ChatTemplate.resolve(named: nil, jinja: ChatFixtures.smolLM2) == .chatML)
}

@Test func resolveErrorsNameWhatWasFoundAndWhatIsAccepted() {
    do {
        _ = try ChatTemplate.resolve(named: "vicuna", jinja: ChatFixtures.smolLM2)
        Issue.record("expected an error")
    } catch let error as ChatTemplateError {
        #expect(error.description.contains("'vicuna'"))
        #expect(error.description.contains("chatml, llama3, llama2"))
    } catch { Issue.record("wrong error \(error)") }

    do {
        _ = try ChatTemplate.resolve(named: nil, jinja: nil)
        Issue.record("expected an error")
    } catch let error as ChatTemplateError {
        #expect(error.description.contains("tokenizer.chat_template"))
        #expect(error.description.contains("zephyr"))
    } catch { Issue.record("wrong error \(error)") }

    do {
        _ = try ChatTemplate.resolve(named: nil, jinja: ChatFixtures.gemma)
        Issue.record("expected an error")
    } catch let error as ChatTemplateError {
        let d = error.description
        // The first 60 characters of the template, then an ellipsis, then the accepted names.
        #expect(d.contains("\"" + String(ChatFixtures.gemma.prefix(60)) + "…\""))
        #expect(!d.contains(String(ChatFixtures.gemma.prefix(61))))
        #expect(d.contains("--chat-template"))
        #expect(d.contains("mistral-v7"))
    } catch { Issue.record("wrong error \(error)") }
}

@Test func endOfTurnTokens() {
    #expect(ChatTemplate.chatML.endOfTurnTokens == ["<|im_end|>"])
    #expect(ChatTemplate.llama3.endOfTurnTokens == ["<|eot_id|>"])
    #expect(ChatTemplate.llama2SysStrip.endOfTurnTokens == ["</s>"])
    #expect(ChatTemplate.zephyr.endOfTurnTokens == ["<|endoftext|>"])
    // Every template ends assistant turns with (one of) its end-of-turn texts, or EOS.
    for t in ChatTemplate.allCases {
        let text = t.render([ChatMessage(role: "user", content: "q"), ChatMessage(role: "assistant", content: "a")],
                            addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>")
        #expect(t.endOfTurnTokens.contains { text.contains("a" + $0) } || text.contains("a</s>"), "\(t)")
    }
}

@Test func chatMessageDecodesTheOpenAIShape() throws {
    let json = Data(#"[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]"#.utf8)
    let decoded = try JSONDecoder().decode([ChatMessage].self, from: json)
    #expect(decoded == [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "hi")])
    let roundTrip = try JSONDecoder().decode([ChatMessage].self, from: JSONEncoder().encode(decoded))
    #expect(roundTrip == decoded)
}
