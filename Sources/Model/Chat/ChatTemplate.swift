/// The chat prompt formats Strata can write, named and rendered as llama.cpp's built-in
/// (non-Jinja) templates are: `llm_chat_apply_template` in llama.cpp `src/llama-chat.cpp`.
///
/// Strata does not run the Jinja in `tokenizer.chat_template`; like llama.cpp without `--jinja`,
/// it recognizes the template by distinctive substrings (`detect(from:)`) and writes the format
/// itself. Whatever the Jinja adds beyond the format — a default system message (SmolLM2's
/// "You are a helpful AI assistant named SmolLM, trained by Hugging Face"), date strings, tool
/// blocks — is therefore not added, exactly as in llama.cpp's legacy path. The references in
/// `Tests/References/greedy_f32.json` were made that way: the "chat" prompts are
/// `<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n` with no system turn.
///
/// `llama2` and its variants cover Mistral's `[INST]` formats too; the variants differ in how a
/// system message is written, whether BOS text appears between turns, and whitespace.
public enum ChatTemplate: String, Sendable, CaseIterable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen, OpenHermes…).
    case chatML = "chatml"
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`, content trimmed.
    case llama3 = "llama3"
    /// `[INST] … [/INST]` with no system-message support: a system message is written as its
    /// text plus "\n" before the first user message (Mistral-7B-Instruct v0.1/v0.2).
    case llama2 = "llama2"
    /// Llama 2 with `<<SYS>>\n…\n<</SYS>>\n\n` system messages.
    case llama2Sys = "llama2-sys"
    /// As `llama2Sys`, with BOS text before every `[INST]` after the first.
    case llama2SysBOS = "llama2-sys-bos"
    /// As `llama2Sys`, with every message's content trimmed (Meta's Llama-2-chat template).
    case llama2SysStrip = "llama2-sys-strip"
    /// Mistral's "v1" format: ` [INST] … [/INST] reply</s>`.
    case mistralV1 = "mistral-v1"
    /// Mistral's "v3" format: `[INST] …[/INST] reply</s>`, replies trimmed.
    case mistralV3 = "mistral-v3"
    /// Mistral's "v3-tekken" format: `[INST]…[/INST]reply</s>`.
    case mistralV3Tekken = "mistral-v3-tekken"
    /// Mistral's "v7" format with `[SYSTEM_PROMPT] …[/SYSTEM_PROMPT]`.
    case mistralV7 = "mistral-v7"
    /// `<|role|>\ncontent` + EOS text + `\n` (Zephyr, StableLM-Zephyr, TinyLlama-Chat).
    case zephyr = "zephyr"

    /// Resolve: an explicit name (from --chat-template) wins; otherwise detect; unrecognized or missing => throws ChatTemplateError naming what was found (first ~60 chars of the template) and the names it accepts.
    ///
    /// Names are llama.cpp's (`chatml`, `llama3`, `llama2-sys`, `mistral-v7`…), compared
    /// without regard to case.
    public static func resolve(named name: String?, jinja: String?) throws -> ChatTemplate {
        let accepted = allCases.map(\.rawValue)
        if let name {
            guard let template = ChatTemplate(rawValue: name.lowercased()) else {
                throw ChatTemplateError.unknownName(name, accepted: accepted)
            }
            return template
        }
        guard let jinja, !jinja.isEmpty else {
            throw ChatTemplateError.missingTemplate(accepted: accepted)
        }
        guard let template = detect(from: jinja) else {
            throw ChatTemplateError.unrecognizedTemplate(
                excerpt: String(jinja.prefix(ChatTemplateError.excerptLength)),
                truncated: jinja.count > ChatTemplateError.excerptLength,
                accepted: accepted)
        }
        return template
    }

    /// The end-of-turn token texts this template uses (e.g. "<|im_end|>", "<|eot_id|>") for stopping.
    ///
    /// Only the template's own marker; the vocabulary's EOS token is a stop in any case. A text
    /// the loaded vocabulary has no token for should be ignored by the caller (a Zephyr-format
    /// model may end turns with "</s>", its EOS, rather than "<|endoftext|>").
    public var endOfTurnTokens: [String] {
        switch self {
        case .chatML: ["<|im_end|>"]
        case .llama3: ["<|eot_id|>"]
        case .llama2, .llama2Sys, .llama2SysBOS, .llama2SysStrip,
             .mistralV1, .mistralV3, .mistralV3Tekken, .mistralV7: ["</s>"]
        case .zephyr: ["<|endoftext|>"]
        }
    }
}
