#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The individual steps of the chain, as static functions so tests of `Sampler` cover them and
/// each reads on its own.
extension Sampler {
    /// llama.cpp `llama_sampler_penalties_apply` (repeat part): each distinct id in `history`
    /// is penalized once, however often it occurs — `logit <= 0 ? logit * p : logit / p`.
    static func applyRepetitionPenalty(
        to logits: inout [Float], history: ArraySlice<Int32>, penalty: Float
    ) {
        var seen = Set<Int32>(minimumCapacity: history.count)
        for id in history where id >= 0 && Int(id) < logits.count && seen.insert(id).inserted {
            let l = logits[Int(id)]
            logits[Int(id)] = l <= 0 ? l * penalty : l / penalty
        }
    }

    /// Index of the largest logit, the lowest index among equals; NaN never wins.
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for i in logits.indices where logits[i] > bestValue {
            best = i
            bestValue = logits[i]
        }
        return best
    }

    /// The `k` best candidates, sorted best first, by a size-`k` min-heap: O(n log k), and for
    /// a typical k=40 almost every token costs one comparison against the heap's root.
    static func selectTopK(_ logits: UnsafeBufferPointer<Float>, k: Int, into out: inout [Candidate]) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(k)
        // Heap ordered so the root is the worst kept candidate.
        func siftDown(_ heap: inout [Candidate], _ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var worst = i
                if l < heap.count && Candidate.ranksAbove(heap[worst], heap[l]) { worst = l }
                if r < heap.count && Candidate.ranksAbove(heap[worst], heap[r]) { worst = r }
                if worst == i { return }
                heap.swapAt(i, worst)
                i = worst
            }
        }
        for i in 0..<k {
            out.append(Candidate(logit: sanitized(logits[i]), id: Int32(i)))
        }
        for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(&out, i) }
        // Ids arrive in increasing order, so an equal logit never ranks above the root: `>` suffices.
        for i in k..<logits.count where logits[i] > out[0].logit {
            out[0] = Candidate(logit: logits[i], id: Int32(i))
            siftDown(&out, 0)
        }
        out.sort(by: Candidate.ranksAbove)
    }

    /// Without top-k, top-p still needs the most likely tokens in order, but not the whole
    /// vocabulary sorted: sort only the tokens within a logit window of the maximum, widening
    /// the window until the tokens inside it hold at least `p` of the probability. Tokens above
    /// a threshold precede every token below it in the full order, so the prefix — and the cut
    /// top-p makes in it — is exactly what a full sort would give.
    static func selectNucleusPrefix(
        _ logits: UnsafeBufferPointer<Float>, p: Float, into out: inout [Candidate]
    ) {
        var maxLogit = -Float.infinity
        for l in logits where l > maxLogit { maxLogit = l }
        var total = 0.0
        if maxLogit > -Float.infinity {
            for l in logits { total += exp(Double(sanitized(l) - maxLogit)) }
        }
        for window: Float in [8, 16, 32] where total > 0 {
            let floor = maxLogit - window
            out.removeAll(keepingCapacity: true)
            var mass = 0.0
            for i in logits.indices where logits[i] >= floor {
                out.append(Candidate(logit: logits[i], id: Int32(i)))
                mass += exp(Double(logits[i] - maxLogit))
            }
            if mass >= Double(p) * total {
                out.sort(by: Candidate.ranksAbove)
                return
            }
        }
        gatherAll(logits, into: &out)
        out.sort(by: Candidate.ranksAbove)
    }

    /// Every token, in id order.
    static func gatherAll(_ logits: UnsafeBufferPointer<Float>, into out: inout [Candidate]) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(logits.count)
        for i in logits.indices {
            out.append(Candidate(logit: sanitized(logits[i]), id: Int32(i)))
        }
    }

    /// llama.cpp `llama_sampler_top_p_apply` on candidates sorted best first: the probabilities
    /// are the softmax over the candidates themselves, and the cut keeps tokens up to and
    /// including the one whose running sum first reaches `p`.
    static func applyTopP(_ candidates: inout [Candidate], p: Float) {
        guard let maxLogit = candidates.first?.logit, maxLogit > -Float.infinity else { return }
        var total = 0.0
        for c in candidates { total += exp(Double(c.logit - maxLogit)) }
        let target = Double(p) * total
        var cumulative = 0.0
        for i in candidates.indices {
            cumulative += exp(Double(candidates[i].logit - maxLogit))
            if cumulative >= target {
                candidates.removeSubrange((i + 1)...)
                return
            }
        }
    }

    /// llama.cpp `llama_sampler_min_p_apply`: keep logits >= max + ln(p), i.e. probability at
    /// least `p` times the best one's. Order is preserved; the best token always stays.
    static func applyMinP(_ candidates: inout [Candidate], p: Float) {
        var maxLogit = -Float.infinity
        for c in candidates where c.logit > maxLogit { maxLogit = c.logit }
        guard maxLogit > -Float.infinity else { return }
        let threshold = maxLogit + logf(p)
        candidates.removeAll { $0.logit < threshold }
    }

    /// NaN logits are treated as impossible tokens.
    @inline(__always) static func sanitized(_ l: Float) -> Float {
        l.isNaN ? -Float.infinity : l
    }
}
