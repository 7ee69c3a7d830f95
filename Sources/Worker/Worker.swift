import StrataModel

/// A worker holds one contiguous range of decoder layers; built in the cluster issue.
public enum Worker {}
