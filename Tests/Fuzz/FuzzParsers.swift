// libFuzzer target over the parsers of files a user downloads: safetensors (header and data
// ranges), GGUF (header, metadata, tensor infos, then the llama configuration and the tokenizer it
// carries) and tokenizer.json. Not part of the package: scripts/fuzz-parsers.sh builds it against
// the package's modules with -sanitize=fuzzer and picks the parser with -D FUZZ_<NAME>. Errors are
// the expected outcome; a crash, a trap, a leak or a hang is a finding.
import Foundation
import Tensor
import VLM

private let scratch: String = {
    let folder = ProcessInfo.processInfo.environment["FUZZ_SCRATCH"] ?? "/dev/shm"
    return (folder as NSString).appendingPathComponent("hiprune-fuzz-\(getpid())")
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    #if FUZZ_SAFETENSORS
    let path = scratch + ".safetensors"
    #elseif FUZZ_GGUF
    let path = scratch + ".gguf"
    #else
    let path = scratch + "-tokenizer.json"
    #endif
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    #if FUZZ_SAFETENSORS
    if let file = try? SafeTensorsFile(path: path) {
        for name in file.entries.keys.sorted() { _ = try? file.floats(name) }
    }
    #elseif FUZZ_GGUF
    if let file = try? GGUFFile(path: path) {
        _ = try? LlamaConfiguration(gguf: file)
        if let tokenizer = try? Tokenizer(gguf: file) { _ = tokenizer.encode("Hello, world! 123 ünï") }
    }
    #else
    if let tokenizer = try? Tokenizer(tokenizerJSON: path) { _ = tokenizer.encode("Hello, world! 123 ünï") }
    #endif
    return 0
}
