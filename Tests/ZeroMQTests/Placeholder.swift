import Testing
import ZeroMQ

@Test func linksLibzmq() { #expect(zmqVersion().major == 4) }
