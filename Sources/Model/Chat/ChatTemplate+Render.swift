extension ChatTemplate {
    /// The prompt text, with special-token text (e.g. "<|im_start|>") to be parsed as special tokens by the tokenizer.
    /// bos/eos are the vocab's BOS/EOS token texts (Llama 2/3 templates put BOS text in the string; llama.cpp does too — check how llama.cpp handles BOS for each and match it, documenting it).
    ///
    /// Output is byte for byte llama.cpp's `llm_chat_apply_template` (golden tests use its
    /// `tests/test-chat-template.cpp`). BOS handling, as there:
    /// - No template writes a leading BOS. The tokenizer adds it when the vocabulary says so
    ///   (`tokenizer.ggml.add_bos_token`, true for Llama 2/3 and Mistral), which is how llama.cpp
    ///   avoids the double BOS a Jinja `{{ bos_token }}` would cause.
    /// - `llama2SysBOS` writes `bosToken` before every `[INST]` after the first, where llama.cpp
    ///   writes the literal `<s>`.
    /// - The Llama 2 / Mistral formats end assistant turns with `eosToken` and Zephyr ends every
    ///   turn with it, where llama.cpp writes the literals `</s>` and `<|endoftext|>`; these are
    ///   the EOS texts of the vocabularies those formats come with, so the output is the same,
    ///   and a Zephyr model whose EOS is `</s>` gets what its own template writes.
    ///
    /// `addGenerationPrompt` appends the opening of an assistant turn for ChatML, Llama 3 and
    /// Zephyr. The `[INST]` formats have none: the prompt already ends with `[/INST]`.
    public func render(
        _ messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String, eosToken: String
    ) -> String {
        var out = ""
        switch self {
        case .chatML:
            for m in messages {
                out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }

        case .llama3:
            for m in messages {
                out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n"
                    + ChatTemplate.trimmed(m.content) + "<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }

        case .llama2, .llama2Sys, .llama2SysBOS, .llama2SysStrip:
            renderLlama2(messages, into: &out, bosToken: bosToken, eosToken: eosToken)

        case .mistralV1, .mistralV3, .mistralV3Tekken:
            renderMistral(messages, into: &out, eosToken: eosToken)

        case .mistralV7:
            for m in messages {
                switch m.role {
                case "system": out += "[SYSTEM_PROMPT] \(m.content)[/SYSTEM_PROMPT]"
                case "user": out += "[INST] \(m.content)[/INST]"
                default: out += " \(m.content)\(eosToken)"
                }
            }

        case .zephyr:
            for m in messages {
                out += "<|\(m.role)|>\n\(m.content)\(eosToken)\n"
            }
            if addGenerationPrompt { out += "<|assistant|>\n" }
        }
        return out
    }

    /// llama.cpp's Llama 2 family: the prompt opens inside a turn ("[INST] "), a system message
    /// goes inside the first turn, and an assistant reply closes the turn.
    private func renderLlama2(
        _ messages: [ChatMessage], into out: inout String, bosToken: String, eosToken: String
    ) {
        let supportsSystem = self != .llama2
        let bosInsideHistory = self == .llama2SysBOS
        let strip = self == .llama2SysStrip
        var insideTurn = true
        out += "[INST] "
        for m in messages {
            let content = strip ? ChatTemplate.trimmed(m.content) : m.content
            if !insideTurn {
                insideTurn = true
                out += bosInsideHistory ? "\(bosToken)[INST] " : "[INST] "
            }
            switch m.role {
            case "system":
                // Without <<SYS>> support the system text still leads the first message.
                out += supportsSystem ? "<<SYS>>\n\(content)\n<</SYS>>\n\n" : "\(content)\n"
            case "user":
                out += "\(content) [/INST]"
            default:
                out += "\(content)\(eosToken)"
                insideTurn = false
            }
        }
    }

    /// Mistral's v1 / v3 / v3-tekken formats, which differ only in spaces around `[INST]` and
    /// whether replies are trimmed.
    private func renderMistral(_ messages: [ChatMessage], into out: inout String, eosToken: String) {
        let leading = self == .mistralV1 ? " " : ""
        let trailing = self == .mistralV3Tekken ? "" : " "
        let trimReplies = self == .mistralV3
        var insideTurn = false
        for m in messages {
            if !insideTurn {
                out += "\(leading)[INST]\(trailing)"
                insideTurn = true
            }
            switch m.role {
            case "system":
                out += "\(m.content)\n\n"
            case "user":
                out += "\(m.content)\(leading)[/INST]"
            default:
                let reply = trimReplies ? ChatTemplate.trimmed(m.content) : m.content
                out += "\(trailing)\(reply)\(eosToken)"
                insideTurn = false
            }
        }
    }

    /// Trims what C's `isspace` calls space (llama.cpp's `trim`): ASCII space, \t, \n, \v, \f, \r
    /// — not Unicode spaces, so the output matches llama.cpp's byte for byte.
    static func trimmed(_ s: String) -> String {
        let scalars = s.unicodeScalars
        func isCSpace(_ c: Unicode.Scalar) -> Bool {
            c == " " || (c.value >= 0x09 && c.value <= 0x0D)
        }
        guard let first = scalars.firstIndex(where: { !isCSpace($0) }),
              let last = scalars.lastIndex(where: { !isCSpace($0) })
        else { return "" }
        return String(scalars[first...last])
    }
}
