import Testing
import StrataWire

@Test func protocolVersionIsSet() { #expect(Wire.protocolVersion >= 0) }
