/// Strata's binary protocol between coordinator and workers. Depends on nothing else of ours.
public enum Wire {
    /// Protocol version, kept apart from the application version.
    public static let protocolVersion: UInt16 = 0
}
