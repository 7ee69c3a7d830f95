import StrataModel
import Testing

/// Feeds pieces one by one; returns everything emitted (flush included) and whether it stopped.
private func run(_ stops: [String], _ pieces: [String]) -> (text: String, stopped: Bool, emits: [String]) {
    var m = StopStringMatcher(stops: stops)
    var emits: [String] = []
    var stopped = false
    for piece in pieces {
        let r = m.feed(piece)
        emits.append(r.emit)
        if r.stopped { stopped = true }
    }
    let tail = m.flush()
    emits.append(tail)
    return (emits.joined(), stopped, emits)
}

@Test func stopSplitAcrossFeeds() {
    var m = StopStringMatcher(stops: ["</end>"])
    #expect(m.feed("Hello </e") == ("Hello ", false))
    #expect(m.feed("nd> and more") == ("", true))
    #expect(m.feed("ignored") == ("", true))
    #expect(m.flush() == "")
}

@Test func stopInsideOneFeedDropsTheRest() {
    let r = run(["STOP"], ["abc STOP def"])
    #expect(r.text == "abc ")
    #expect(r.stopped)
}

@Test func partialPrefixIsReleasedAtFlush() {
    var m = StopStringMatcher(stops: ["<stop>"])
    #expect(m.feed("abc <st") == ("abc ", false))
    #expect(m.flush() == "<st")
    #expect(m.flush() == "")
}

@Test func partialPrefixIsReleasedWhenItStopsMatching() {
    var m = StopStringMatcher(stops: ["<stop>"])
    #expect(m.feed("a <st") == ("a ", false))
    #expect(m.feed("uff") == ("<stuff", false))
    #expect(m.feed(" <") == (" ", false))
    #expect(m.feed("<stop>") == ("<", true))
}

@Test func selfOverlappingStop() {
    // "aab" after "aa…": the held prefix must slide, not reset.
    var m = StopStringMatcher(stops: ["aab"])
    #expect(m.feed("a") == ("", false))
    #expect(m.feed("a") == ("", false))
    #expect(m.feed("a") == ("a", false))
    #expect(m.feed("b") == ("", true))
}

@Test func overlappingCandidatesEarliestStartWins() {
    #expect(run(["world", "lo w"], ["hello world"]).text == "hel")
    #expect(run(["world", "lo w"], ["hel", "lo", " wor", "ld"]).text == "hel")
    // A longer stop partly matched must not hide a shorter one completed inside it.
    let r = run(["abcd", "bc"], ["xab", "c"])
    #expect(r.text == "xa" && r.stopped)
    // Hold back the longest possible prefix among several stops.
    var m = StopStringMatcher(stops: ["###", "##END"])
    #expect(m.feed("x##") == ("x", false))
    #expect(m.feed("E") == ("", false))
    #expect(m.feed("X") == ("##EX", false))
}

@Test func multiByteCharacters() {
    let r = run(["日本語"], ["今日は日", "本", "語です"])
    #expect(r.text == "今日は")
    #expect(r.emits.first == "今日は")  // "日" held back: it starts the stop
    #expect(r.stopped)
    // A character sharing its first UTF-8 byte with the stop ("ê" vs "é": C3 AA vs C3 A9) is
    // emitted whole, never split.
    var m = StopStringMatcher(stops: ["é!"])
    #expect(m.feed("ê") == ("ê", false))
    #expect(m.feed("é") == ("", false))
    #expect(m.feed("?") == ("é?", false))
    #expect(run(["🛑"], ["go 🚦 go 🛑 no"]).text == "go 🚦 go ")
}

@Test func noStopsPassesEverythingThrough() {
    var m = StopStringMatcher(stops: ["", ""])
    #expect(m.feed("<|im_end|>") == ("<|im_end|>", false))
    #expect(m.flush() == "")
    let r = run([], ["a", "b"])
    #expect(r.text == "ab" && !r.stopped)
}
