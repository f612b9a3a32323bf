import Foundation
@testable import Tensor
import XCTest

/// The format's own rules, as huggingface/safetensors enforces them (Metadata::validate, the
/// serde header types): each hostile header is refused with a cause that names what is wrong.
final class SafeTensorsRulesTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hiprune-rules-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes a file of `header` (verbatim) and `dataBytes` bytes of data (each byte 1), then opens it.
    func open(_ header: String, dataBytes: Int, name: String = "t.safetensors") throws -> SafeTensorsFile {
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: [UInt8](repeating: 1, count: dataBytes))
        let path = directory + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return try SafeTensorsFile(path: path)
    }

    func assertRefused(_ header: String, dataBytes: Int, says: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try open(header, dataBytes: dataBytes), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains("t.safetensors") && "\(error)".contains(says), "\(error)", file: file, line: line)
        }
    }

    func testValidFileStillOpens() throws {
        let file = try open(#"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[],"data_offsets":[8,9]}}"#, dataBytes: 9)
        XCTAssertEqual(file.entries["a"]?.shape, [2])
        XCTAssertEqual(file.entries["b"]?.range, 8..<9)
        XCTAssertEqual(file.metadata, ["k": "v"])
    }

    func testOverlappingGapsAndUncoveredBytesAreRefused() {
        let a = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        assertRefused("{\(a),\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", dataBytes: 12, says: "'b' data [4, 12] overlaps")
        assertRefused("{\(a),\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", dataBytes: 16, says: "'b' data [12, 16] leaves bytes 8..<12 uncovered")
        assertRefused("{\(a)}", dataBytes: 12, says: "4 data bytes after the last tensor")
    }

    func testDuplicateNamesAreRefused() {
        let a = #""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#
        assertRefused("{\(a),\(a)}", dataBytes: 4, says: "'a' appears twice")
        assertRefused(#"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4, says: "'dtype' appears twice")
        assertRefused(#"{"__metadata__":{"k":"v","k":"w"}}"#, dataBytes: 0, says: "metadata 'k' appears twice")
    }

    func testNonIntegerShapesAndOffsetsAreRefused() {
        for bad in ["1.5", "true", "-1", "1e2", "\"2\"", "null", "1180591620717411303424"] {
            assertRefused("{\"a\":{\"dtype\":\"U8\",\"shape\":[\(bad)],\"data_offsets\":[0,1]}}", dataBytes: 1, says: "shape holds")
            assertRefused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,\(bad)]}}", dataBytes: 1, says: "data_offsets holds")
        }
        // 2^70 is named as the number it is, not as "0 bytes".
        assertRefused(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1180591620717411303424]}}"#, dataBytes: 1,
                      says: "1180591620717411303424")
    }

    func testOtherHeaderAttacks() {
        assertRefused(#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}"#, dataBytes: 1, says: "unknown dtype Q9")
        assertRefused(#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#, dataBytes: 1, says: "not a whole number of bytes")
        assertRefused(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4, says: "4 bytes for shape [2] F32")
        assertRefused(#"{"__metadata__":{"k":1}}"#, dataBytes: 0, says: "metadata 'k' is not a string")
        assertRefused(#"[1,2]"#, dataBytes: 0, says: "not a JSON object")
        assertRefused(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} x"#, dataBytes: 1, says: "bytes after")
        assertRefused(String(repeating: "[", count: 200), dataBytes: 0, says: "not a JSON object")
        assertRefused("{\"a\":{\"x\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}}", dataBytes: 0, says: "nested deeper")
        assertRefused(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#, dataBytes: 1, says: "malformed JSON")
    }

    /// A truncated file names the first tensor past the end in offset order: the same every run.
    func testTruncationNamesTheSameTensorEveryRun() throws {
        let names = (0..<20).map { "t\($0)" }
        let header = "{" + names.enumerated().map { "\"\($1)\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\($0 * 4),\($0 * 4 + 4)]}" }.joined(separator: ",") + "}"
        var messages = Set<String>()
        for _ in 0..<5 {
            XCTAssertThrowsError(try open(header, dataBytes: 42)) { messages.insert("\($0)") }
        }
        XCTAssertEqual(messages.count, 1)
        XCTAssertTrue(messages.first?.contains("'t10' data [40, 44] beyond the file") == true, "\(messages)")
    }

    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        var bytes = Data()
        for v: Float in [1, .nan, 2, .infinity] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        let header = #"{"ok":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"bad":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(bytes)
        let path = directory + "/nan.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.floats("ok"), [1])
        XCTAssertThrowsError(try file.floats("bad")) { error in
            XCTAssertEqual("\(error)", "\(path): not a valid safetensors file: tensor 'bad' holds nan at element 0")
        }
        XCTAssertEqual(SafeTensorsFile.firstNonFinite([1, 2, -.infinity]), 2)
        XCTAssertNil(SafeTensorsFile.firstNonFinite([1, 2, .greatestFiniteMagnitude]))
    }

    /// The spool writes a valid file of the groups appended so far, from another thread too.
    func testSpoolFinishesWithTheGroupsSoFar() throws {
        let path = directory + "/spooled.safetensors"
        let spool = try SafeTensorsSpool(destination: path, spoolPath: directory + "/.spooled.partial")
        try spool.append([.init(name: "a", floats: [1, 2], shape: [2])], metadata: ["frames": "1"])
        try spool.append([.init(name: "b", int32s: [3], shape: [1]), .init(name: "c", floats: [4], shape: [1])], metadata: ["frames": "2"])
        XCTAssertThrowsError(try spool.append([.init(name: "a", floats: [1], shape: [1])], metadata: [:]), "a name twice")
        XCTAssertThrowsError(try spool.append([.init(name: "d", floats: [1], shape: [2])], metadata: [:]), "shape and data differ")
        let finished = DispatchSemaphore(value: 0)
        Thread { try? spool.finish(); finished.signal() }.start()
        finished.wait()
        XCTAssertThrowsError(try spool.append([.init(name: "e", floats: [1], shape: [1])], metadata: [:]), "finished")
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.floats("a"), [1, 2])
        XCTAssertEqual(try file.int32s("b"), [3])
        XCTAssertEqual(try file.floats("c"), [4])
        XCTAssertEqual(file.metadata, ["frames": "2"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["spooled.safetensors"])
    }
}
