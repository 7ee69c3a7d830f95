/// Endpoint checks that libzmq itself gets wrong.
enum ZMQEndpoint {
    /// Whether a `tcp://` endpoint's port is `*` or a number in 0…65535 (other transports pass).
    ///
    /// libzmq 4.3.4 reads the port with `atoi` and casts it to 16 bits, so
    /// `bind("tcp://127.0.0.1:99999")` succeeded on port 34463 and `":3abc"` bound port 3
    /// (measured). Binding or connecting somewhere other than asked, silently, is worse than
    /// an error, so such endpoints are refused with EINVAL before libzmq sees them.
    static func hasValidTCPPort(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return true }
        // The port follows the last colon: IPv6 hosts are bracketed, so theirs come earlier,
        // and in "tcp://source:port;host:port" the last one is the destination's.
        guard let colon = endpoint.lastIndex(of: ":"), colon > endpoint.index(endpoint.startIndex, offsetBy: 4) else {
            return true  // no port at all: libzmq refuses that itself
        }
        let port = endpoint.utf8[endpoint.utf8.index(after: colon)...]
        if port.elementsEqual("*".utf8) { return true }
        guard (1...5).contains(port.count), port.allSatisfy({ (0x30...0x39).contains($0) }) else { return false }
        return Int(Substring(port))! <= 65_535
    }
}
