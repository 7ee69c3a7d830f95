// libFuzzer harness for the GGUF reader (built with Sources/Model/GGUF by scripts/fuzz.sh).
//
// Every input is read as a GGUF file. The reader must throw a GGUFError or load, never crash,
// hang or leak; and whatever it loads must be safe to use: every tensor's bytes and shape, and
// every metadata value, are read.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUFFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let map = try? MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), name: "input"),
          let file = try? GGUFFile(map: map) else { return 0 }
    var sum = 0
    for t in file.tensors {
        for byte in file.data(of: t) { sum &+= Int(byte) }
        sum &+= t.rows &* t.cols &+ t.rowBytes
    }
    for key in file.keys { sum &+= file.metadata[key]!.description.utf8.count }
    if sum == Int.min { fatalError("unreachable: keeps the reads") }
    return 0
}
