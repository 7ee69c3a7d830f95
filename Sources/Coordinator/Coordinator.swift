import StrataModel

/// The coordinator partitions layers across workers; built in the cluster issue.
public enum Coordinator {}
