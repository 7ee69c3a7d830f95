import StrataModel
import Testing

/// The typed accessors return values of the right type and otherwise throw naming the key.
@Suite struct GGUFAccessorTests {
    let file: GGUFFile

    init() throws {
        var w = sampleWriter()
        w.add(key: "k.huge", .uint64(.max))
        w.add(key: "k.arr.f32", .array(elementType: 6, [.float32(0.5), .float32(-2)]))
        file = try loadGGUF(w.bytes())
    }

    @Test func valuesOfTheRightType() throws {
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.int("k.u8") == 200)
        #expect(try file.int("k.i8") == -5)
        #expect(try file.int("k.u32") == 4_000_000_000)
        #expect(try file.int("k.i64") == -(1 << 40))
        #expect(try file.float("k.f32") == 1.5)
        #expect(try file.float("k.f64") == -2.25)
        #expect(try file.float("k.i16") == -300)  // integers read as floats
        #expect(try file.optionalBool("k.bool") == true)
        #expect(try file.stringArray("k.arr.str") == ["a", "bc", ""])
        #expect(try file.intArray("k.arr.u8") == [1, 2, 3])
        #expect(try file.floatArray("k.arr.f32") == [0.5, -2])
    }

    @Test func missingKeys() throws {
        #expect(throws: GGUFError.missingKey("nope")) { try file.string("nope") }
        #expect(throws: GGUFError.missingKey("nope")) { try file.int("nope") }
        #expect(throws: GGUFError.missingKey("nope")) { try file.float("nope") }
        #expect(try file.optionalString("nope") == nil)
        #expect(try file.optionalInt("nope") == nil)
        #expect(try file.optionalFloat("nope") == nil)
        #expect(try file.optionalBool("nope") == nil)
        #expect(try file.stringArray("nope") == nil)
        #expect(try file.intArray("nope") == nil)
        #expect(try file.floatArray("nope") == nil)
        #expect(file.tensorInfo("nope") == nil)
    }

    @Test func wrongTypes() {
        #expect(throws: GGUFError.wrongValueType(key: "k.u32", expected: "string", found: "uint32")) { try file.string("k.u32") }
        #expect(throws: GGUFError.wrongValueType(key: "k.i8", expected: "string", found: "int8")) { try file.optionalString("k.i8") }
        #expect(throws: GGUFError.wrongValueType(key: "k.str", expected: "integer", found: "string")) { try file.int("k.str") }
        #expect(throws: GGUFError.wrongValueType(key: "k.f32", expected: "integer", found: "float32")) { try file.optionalInt("k.f32") }
        #expect(throws: GGUFError.wrongValueType(key: "k.huge", expected: "integer", found: "uint64")) { try file.int("k.huge") }
        #expect(throws: GGUFError.wrongValueType(key: "k.str", expected: "float", found: "string")) { try file.float("k.str") }
        #expect(throws: GGUFError.wrongValueType(key: "k.arr.u8", expected: "float", found: "array[uint8]")) { try file.optionalFloat("k.arr.u8") }
        #expect(throws: GGUFError.wrongValueType(key: "k.u8", expected: "bool", found: "uint8")) { try file.optionalBool("k.u8") }
        #expect(throws: GGUFError.wrongValueType(key: "k.str", expected: "array", found: "string")) { try file.stringArray("k.str") }
        #expect(throws: GGUFError.wrongValueType(key: "k.arr.u8", expected: "array[string]", found: "array of uint8")) {
            try file.stringArray("k.arr.u8")
        }
        #expect(throws: GGUFError.wrongValueType(key: "k.arr.str", expected: "array[integer]", found: "array of string")) {
            try file.intArray("k.arr.str")
        }
        #expect(throws: GGUFError.wrongValueType(key: "k.arr.nested", expected: "array[float32]", found: "array of array[int32]")) {
            try file.floatArray("k.arr.nested")
        }
    }
}
