/// The application version, reported in `hello` and by `strata --version`. Compatibility
/// between peers is decided by `Wire.protocolVersion`, not by this.
public enum StrataVersion {
    public static let string = "0.4.0"
}
