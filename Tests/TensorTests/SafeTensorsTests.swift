import Foundation
import Tensor
import XCTest

final class SafeTensorsTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hiprune-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func testWriterRoundTrip() throws {
        var writer = SafeTensorsWriter()
        let m = try Matrix(rows: 2, cols: 3, storage: [1, 2, 3, 4, 5, -6.5])
        writer.add("frame.0.features", matrix: m)
        try writer.add("ids", int32s: [7, -8, 9], shape: [3])
        try writer.add("cube", floats: (0..<8).map(Float.init), shape: [2, 2, 2])
        writer.metadata = ["layers": "6,12", "frame.0.grid": "8x8"]
        let path = directory + "/out.safetensors"
        try writer.write(to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.matrix("frame.0.features"), m)
        XCTAssertEqual(try file.int32s("ids"), [7, -8, 9])
        XCTAssertEqual(file.entries["cube"]?.shape, [2, 2, 2])
        XCTAssertEqual(file.metadata, ["layers": "6,12", "frame.0.grid": "8x8"])
        XCTAssertThrowsError(try writer.add("bad", floats: [1, 2], shape: [3]))
        // Nothing else is left in the directory (the temp file was renamed).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["out.safetensors"])
    }

    /// A hand-built file with F16 and BF16 tensors, bytes laid out as the format specifies.
    func testHalfAndBFloatBecomeFloat() throws {
        let header = #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x35] as [UInt8])  // 1.0, -2.0, 0.3125
        data.append(contentsOf: [0x80, 0x3F, 0x49, 0x40] as [UInt8])  // 1.0, 3.140625
        let path = directory + "/half.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.floats("h"), [1, -2, 0.3125])
        XCTAssertEqual(try file.floats("b"), [1, 3.140625])
        XCTAssertThrowsError(try file.floats("nope")) { error in
            XCTAssertEqual(error as? WeightsError, .missingTensor(name: "nope", file: path))
        }
    }

    func testOffsetsBeyondFileAreRejected() throws {
        let header = #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: [UInt8](repeating: 0, count: 12))
        let path = directory + "/short.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) { error in
            XCTAssertTrue("\(error)".contains("short.safetensors") && "\(error)".contains("'x'"), "\(error)")
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path))
    }

    func testHostileShapeIsAnErrorNotATrap() throws {
        let header = #"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: [UInt8](repeating: 0, count: 16))
        let path = directory + "/hostile.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) { error in
            XCTAssertTrue("\(error)".contains("too large"), "\(error)")
        }
    }

    func testWeightStoreChecksShapes() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", floats: [Float](repeating: 1, count: 6), shape: [2, 3])
        try writer.write(to: directory + "/model.safetensors")
        let store = try WeightStore(directory: directory)
        XCTAssertEqual(try store.matrix("w", shape: [2, 3]).shape, [2, 3])
        XCTAssertThrowsError(try store.matrix("w", shape: [3, 2])) { error in
            XCTAssertEqual(error as? WeightsError, .wrongShape(name: "w", expected: [3, 2], found: [2, 3]))
        }
        XCTAssertThrowsError(try WeightStore(directory: directory + "/missing"))
    }
}

final class BLASRuntimeTests: XCTestCase {
    func testCoreTypeDecision() {
        XCTAssertEqual(BLASRuntime.coreTypeOverride(path: .avx512, environment: [:]), "SkylakeX")
        XCTAssertNil(BLASRuntime.coreTypeOverride(path: .avx2, environment: [:]))
        XCTAssertNil(BLASRuntime.coreTypeOverride(path: .avx512, environment: ["OPENBLAS_CORETYPE": "Haswell"]))
        XCTAssertNil(BLASRuntime.coreTypeOverride(path: .portable, environment: [:]))
    }
}
