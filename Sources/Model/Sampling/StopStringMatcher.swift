/// Watches generated text for stop strings; holds back text that might be the start of a stop string
/// so a client never sees part of one.
///
/// Matching is on UTF-8 bytes, as llama.cpp's server does (`find_stopping_strings`), not on
/// Swift `Character`s: a decoded piece may end inside a grapheme cluster (a base letter now, its
/// combining accent in the next token), and byte matching never merges across feeds. Because the
/// input and the stops are valid UTF-8, every match and every held-back prefix starts on a
/// scalar boundary, so what is emitted always decodes cleanly.
public struct StopStringMatcher: Sendable {
    private let stops: [[UInt8]]
    /// Text received but not yet emitted: always a proper prefix of some stop string.
    private var pending: [UInt8] = []
    private var stopped = false

    /// `stops` may be empty (then everything passes through at once); empty strings are ignored.
    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Feed newly decoded text; returns the text safe to emit now, and whether a stop string was hit (text after/including it is dropped).
    ///
    /// When several stops occur, the one that starts earliest wins. After a stop, every further
    /// feed returns `("", true)`.
    public mutating func feed(_ text: String) -> (emit: String, stopped: Bool) {
        if stopped { return ("", true) }
        pending.append(contentsOf: text.utf8)
        if let start = earliestMatch() {
            stopped = true
            let emit = String(decoding: pending[..<start], as: UTF8.self)
            pending.removeAll()
            return (emit, true)
        }
        let keep = longestPartialSuffix()
        let emit = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return (emit, false)
    }

    /// At end of generation: the held-back text that turned out not to be a stop.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return stopped ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Start of the earliest full occurrence of any stop in `pending`.
    private func earliestMatch() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= pending.count {
            let lastStart = best.map { min($0 - 1, pending.count - stop.count) }
                ?? pending.count - stop.count
            guard lastStart >= 0 else { continue }
            for start in 0...lastStart where pending[start] == stop[0] {
                if pending[start..<(start + stop.count)].elementsEqual(stop) {
                    best = start
                    break
                }
            }
        }
        return best
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop: the part
    /// that could still become a stop with more text.
    private func longestPartialSuffix() -> Int {
        var longest = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > longest {
                if pending[(pending.count - length)...].elementsEqual(stop[..<length]) {
                    longest = length
                    break
                }
                length -= 1
            }
        }
        return longest
    }
}
