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

    /// Every token, in id order.
    static func gatherAll(_ logits: UnsafeBufferPointer<Float>, into out: inout [Candidate]) {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(logits.count)
        for i in logits.indices {
            out.append(Candidate(logit: sanitized(logits[i]), id: Int32(i)))
        }
    }

    /// llama.cpp `llama_sampler_top_p_apply`: the probabilities are the softmax over the
    /// candidates themselves; in order of rank, tokens are kept up to and including the one
    /// whose running sum first reaches `p`.
    ///
    /// Few candidates (top-k ran first) are simply sorted. A whole vocabulary is not: a
    /// histogram of the logits finds the bucket where the running sum crosses `p`, and only that
    /// bucket is sorted. Buckets are monotone in the logit, so every token in a higher bucket
    /// ranks above every token in the crossing one and the kept set is exactly the sorted
    /// prefix; only the order of the survivors differs, which the later steps do not depend on.
    static func applyTopP(_ candidates: inout [Candidate], p: Float) {
        var maxLogit = -Float.infinity, minLogit = Float.infinity
        for c in candidates where c.logit > -Float.infinity {
            maxLogit = max(maxLogit, c.logit)
            minLogit = min(minLogit, c.logit)
        }
        guard maxLogit > -Float.infinity else { return }
        let range = maxLogit - minLogit
        if candidates.count <= 1024 || !(range > 0) || !range.isFinite {
            candidates.sort(by: Candidate.ranksAbove)
            cutSorted(&candidates, maxLogit: maxLogit, p: p)
            return
        }
        let bucketCount = 2048
        let scale = Float(bucketCount) / range
        @inline(__always) func bucket(_ l: Float) -> Int {
            l == -Float.infinity ? bucketCount : min(bucketCount - 1, Int((maxLogit - l) * scale))
        }
        var mass = [Double](repeating: 0, count: bucketCount + 1)
        for c in candidates { mass[bucket(c.logit)] += weight(c.logit, maxLogit) }
        let target = Double(p) * mass.reduce(0, +)
        var crossing = 0
        var cumulative = 0.0
        while crossing < bucketCount && cumulative + mass[crossing] < target {
            cumulative += mass[crossing]
            crossing += 1
        }
        guard crossing < bucketCount else { return }  // rounding: everything is needed
        var kept: [Candidate] = []
        var boundary: [Candidate] = []
        for c in candidates {
            let b = bucket(c.logit)
            if b < crossing { kept.append(c) } else if b == crossing { boundary.append(c) }
        }
        boundary.sort(by: Candidate.ranksAbove)
        for c in boundary {
            kept.append(c)
            cumulative += weight(c.logit, maxLogit)
            if cumulative >= target { break }
        }
        candidates = kept
    }

    /// The top-p cut on candidates sorted best first.
    private static func cutSorted(_ candidates: inout [Candidate], maxLogit: Float, p: Float) {
        var total = 0.0
        for c in candidates { total += weight(c.logit, maxLogit) }
        let target = Double(p) * total
        var cumulative = 0.0
        for i in candidates.indices {
            cumulative += weight(candidates[i].logit, maxLogit)
            if cumulative >= target {
                candidates.removeSubrange((i + 1)...)
                return
            }
        }
    }

    @inline(__always) private static func weight(_ logit: Float, _ maxLogit: Float) -> Double {
        Double(expf(logit - maxLogit))
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
