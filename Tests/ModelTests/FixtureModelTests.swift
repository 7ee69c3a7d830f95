import Foundation
import StrataModel
import TestSupport
import Testing

/// The tiny multi-head (6 query = 6 KV heads), untied-output fixture with llama.cpp's trace
/// (f32 KV cache, no flash attention): token for token, and its raw logits at every step.
@Test func tinyMultiHeadUntiedFixtureReproducesLlamaCppTrace() throws {
    struct Trace: Decodable {
        struct Prompt: Decodable {
            let name: String
            let prompt: String
            let prompt_ids: [Int32]
            let generated_ids: [Int32]
            let steps: [Step]
        }
        struct Step: Decodable { let top10: [Entry] }
        struct Entry: Decodable { let id: Int; let logit: Float }
        let prompts: [Prompt]
    }
    let path = TestPaths.ref("fixtures/fwd_c_mha_untied.gguf").path
    let trace = try JSONDecoder().decode(Trace.self, from: Data(contentsOf: TestPaths.ref("fixtures/trace_fwd_c_mha_untied_f32.json")))
    let gguf = try GGUFFile(path: path)
    let tokenizer = try Tokenizer(gguf: gguf)
    let config = try LlamaConfig(gguf: gguf)
    #expect(config.nHeads == 6 && config.nKVHeads == 6 && gguf.tensorInfo("output.weight") != nil)
    let engine = try TinyModel.engine(path: path, precision: .fast)
    #expect(trace.prompts.count == 3)
    for prompt in trace.prompts {
        #expect(tokenizer.encode(prompt.prompt, addBOS: true, parseSpecial: true) == prompt.prompt_ids, "prompt \(prompt.name)")
        let (ids, logits) = try engine.greedy(prompt: prompt.prompt_ids, steps: prompt.generated_ids.count,
                                              eos: tokenizer.eosID, kv: .f32)
        #expect(ids == prompt.generated_ids, "prompt \(prompt.name)")
        // The trace prints logits with 6 decimals; an independent float64 pass agreed to 4e-4.
        for (step, want) in zip(logits, prompt.steps) {
            let worst = want.top10.map { abs(step[$0.id] - $0.logit) }.max()!
            #expect(worst < 1e-3, "prompt \(prompt.name)")
        }
    }
}
