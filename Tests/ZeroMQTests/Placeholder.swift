import Testing
import ZeroMQ

@Test func linksLibzmq() { #expect(ZMQ.version.major == 4) }
