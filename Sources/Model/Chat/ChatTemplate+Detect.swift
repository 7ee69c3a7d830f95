extension ChatTemplate {
    /// Recognizes the template from GGUF `tokenizer.chat_template` (a Jinja string), the way llama.cpp's detector does (by distinctive substrings).
    ///
    /// This follows `llm_chat_detect_template` branch by branch, in its order, so a template is
    /// never taken for one of ours when llama.cpp would pick a format Strata lacks (Phi-3/4,
    /// SmolVLM, Gemma, Command-R, …): those give `nil`. A string that is exactly a template name
    /// ("chatml") is that template, as in llama.cpp.
    ///
    /// One deliberate difference: llama.cpp sends every template containing both `<|user|>` and
    /// `<|assistant|>` to Falcon 3 or GLM-Edge, which shadows its own Zephyr rule for the real
    /// Zephyr/TinyLlama-Chat templates (they write `eos_token` after each turn). Here such a
    /// template is Zephyr when it uses `eos_token` and has no literal `</s>` (Falcon 3's marker);
    /// GLM-Edge's template uses neither and still gives `nil`.
    public static func detect(from jinja: String) -> ChatTemplate? {
        if let named = ChatTemplate(rawValue: jinja) { return named }
        func has(_ needle: String) -> Bool { jinja.contains(needle) }

        if has("<|im_start|>") {
            // Phi-4 and SmolVLM use <|im_start|> without being ChatML.
            return has("<|im_sep|>") || has("<end_of_utterance>") ? nil : .chatML
        }
        if jinja.hasPrefix("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") { return .mistralV7 }
            // Mistral's official "v1" template, and "v3"/"v3-tekken" (which carry tool blocks).
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                if has(" [INST]") { return .mistralV1 }
                if has("\"[INST]\"") { return .mistralV3Tekken }
                return .mistralV3
            }
            if has("content.strip()") { return .llama2SysStrip }
            if has("bos_token + '[INST]") { return .llama2SysBOS }
            if has("<<SYS>>") { return .llama2Sys }
            return .llama2
        }
        if has("<|assistant|>") && has("<|end|>") { return nil }  // Phi-3
        if has("[gMASK]<sop>") { return nil }  // ChatGLM 4
        if has("<|assistant|>") && has("<|user|>") {
            if has("</s>") { return nil }  // Falcon 3
            return has("eos_token") ? .zephyr : nil  // see above; llama.cpp: GLM-Edge
        }
        if has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>") { return nil }  // GLM-Edge
        if has("<|user|>") && has("<|endoftext|>") { return .zephyr }
        // Formats llama.cpp checks before Llama 3; a template matching one is not Llama 3.
        let earlierFormats = [
            ["bos_token + message['role']"],  // Monarch
            ["<start_of_turn>"],  // Gemma
            ["'\\n\\nAssistant: ' + eos_token"],  // Orion
            ["GPT4 Correct "],  // OpenChat
            ["USER: ", "ASSISTANT: "],  // Vicuna
            ["### Instruction:", "<|EOT|>"],  // DeepSeek Coder
            ["<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"],  // Command-R
        ]
        if earlierFormats.contains(where: { $0.allSatisfy(has) }) { return nil }
        if has("<|start_header_id|>") && has("<|end_header_id|>") { return .llama3 }
        return nil
    }
}
