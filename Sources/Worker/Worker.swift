import Crypto
import StrataModel
import StrataWire
import ZeroMQ

/// A worker holds one contiguous range of decoder layers; built in the cluster issue.
public enum Worker {}
