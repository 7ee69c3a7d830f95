extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var totalSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }

    /// Whole milliseconds, rounded up (a wait of this many never ends early); 0 for negative durations.
    public var milliseconds: Int { Self.whole(self, unit: 1_000_000_000_000_000) }

    /// Whole microseconds, rounded up; 0 for negative durations.
    public var microseconds: Int { Self.whole(self, unit: 1_000_000_000_000) }

    private static func whole(_ d: Duration, unit: Int64) -> Int {
        let (seconds, atto) = d.components
        guard seconds >= 0, atto >= 0 else { return 0 }
        return Int(seconds) * Int(1_000_000_000_000_000_000 / unit) + Int((atto + unit - 1) / unit)
    }
}
