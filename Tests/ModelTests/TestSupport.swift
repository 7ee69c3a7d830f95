import Foundation
import StrataModel
import TestSupport

/// Index of the largest value; ties go to the lowest index (as llama.cpp's greedy sampler).
func argmax(_ xs: ArraySlice<Float>) -> Int {
    var best = xs.startIndex
    for i in xs.indices where xs[i] > xs[best] { best = i }
    return best - xs.startIndex
}

extension LlamaEngine {
    /// Greedy decoding in one sequence: returns the generated ids (stopping after `eos`, which is
    /// included) and the logits of every step.
    func greedy(prompt: [Int32], steps: Int, eos: Int32? = nil, sequence: SequenceID = 1, kv: KVCacheType = .f16) throws -> (ids: [Int32], logits: [[Float]]) {
        let cache = makeCache(maxSequences: 1, type: kv)
        var x = try embed(prompt)
        try forward(&x, batch: prompt.indices.map { BatchToken(sequence: sequence, position: $0) }, cache: cache)
        var logits = try self.logits(x, rows: [prompt.count - 1])
        var ids: [Int32] = [], all: [[Float]] = []
        for step in 0 ..< steps {
            all.append(logits)
            let id = Int32(argmax(logits[...]))
            ids.append(id)
            if id == eos || step == steps - 1 { break }
            var h = try embed([id])
            try forward(&h, batch: [BatchToken(sequence: sequence, position: prompt.count + step)], cache: cache)
            logits = try self.logits(h, rows: [0])
        }
        return (ids, all)
    }
}
