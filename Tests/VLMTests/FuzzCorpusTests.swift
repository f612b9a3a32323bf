import Foundation
import Tensor
import VLM
import XCTest

/// The parser fuzzer's committed corpus (Tests/Fixtures/hostile/fuzz, scripts/fuzz-parsers.sh):
/// every seed parses, every input that once crashed a parser is now refused with an error.
final class FuzzCorpusTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hostile/fuzz")

    func files(_ parser: String, prefix: String) throws -> [String] {
        let folder = Self.root.appendingPathComponent(parser)
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(prefix) }.sorted()
            .map { folder.appendingPathComponent($0).path }
    }

    func testSeedsParse() throws {
        for path in try files("safetensors", prefix: "seed-") { XCTAssertNoThrow(try SafeTensorsFile(path: path), path) }
        for path in try files("gguf", prefix: "seed-") {
            let file = try GGUFFile(path: path)
            XCTAssertNoThrow(try LlamaConfiguration(gguf: file), path)
            XCTAssertNoThrow(try Tokenizer(gguf: file), path)
        }
        for path in try files("tokenizer", prefix: "seed-") { XCTAssertNoThrow(try Tokenizer(tokenizerJSON: path), path) }
    }

    func testCrashesAreRefused() throws {
        var checked = 0
        for path in try files("safetensors", prefix: "crash-") {
            XCTAssertThrowsError(try SafeTensorsFile(path: path), path)
            checked += 1
        }
        for path in try files("gguf", prefix: "crash-") {
            XCTAssertThrowsError(try LlamaConfiguration(gguf: GGUFFile(path: path)), path)
            checked += 1
        }
        for path in try files("tokenizer", prefix: "crash-") {
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: path), path) { error in
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "the corpus holds the crashes found so far")
    }
}
