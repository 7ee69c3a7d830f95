/// GGUF tensor names of the Llama architecture: the only place these strings are built.
enum TensorName {
    static let tokenEmbedding = "token_embd.weight"
    static let outputNorm = "output_norm.weight"
    static let output = "output.weight"
    static let ropeFreqs = "rope_freqs.weight"

    static func attnNorm(_ l: Int) -> String { "blk.\(l).attn_norm.weight" }
    static func wq(_ l: Int) -> String { "blk.\(l).attn_q.weight" }
    static func wk(_ l: Int) -> String { "blk.\(l).attn_k.weight" }
    static func wv(_ l: Int) -> String { "blk.\(l).attn_v.weight" }
    static func wo(_ l: Int) -> String { "blk.\(l).attn_output.weight" }
    static func ffnNorm(_ l: Int) -> String { "blk.\(l).ffn_norm.weight" }
    static func w1(_ l: Int) -> String { "blk.\(l).ffn_gate.weight" }
    static func w2(_ l: Int) -> String { "blk.\(l).ffn_down.weight" }
    static func w3(_ l: Int) -> String { "blk.\(l).ffn_up.weight" }

    /// Names of the tensors one decoder layer needs.
    static func layer(_ l: Int) -> [String] {
        [attnNorm(l), wq(l), wk(l), wv(l), wo(l), ffnNorm(l), w1(l), w2(l), w3(l)]
    }
}
