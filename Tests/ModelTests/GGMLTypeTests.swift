import Testing
import StrataModel

@Test func blockByteCounts() {
    #expect(GGMLType.q4_1.byteCount(elements: 64) == 40)
    #expect(GGMLType.q4_1.byteCount(elements: 33) == nil)
    #expect(GGMLType.q6_K.byteCount(elements: 512) == 420)
    #expect(GGMLType.f32.byteCount(elements: Int.max) == nil)
}
