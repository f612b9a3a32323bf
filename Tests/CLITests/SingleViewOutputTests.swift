import Foundation
import Tensor
import TestSupport
import XCTest

/// Frames became lists of views (AnyRes); families of one view per frame must give the
/// outputs they gave before (kept tokens identical; features and scores within the parity bounds,
/// since kernels may change the order of a sum), compared with files the earlier binary wrote
/// (Fixtures/single-view).
final class SingleViewOutputTests: XCTestCase {
    static let fixtures = CLI.path("Tests/Fixtures/single-view")

    /// The JSON lines without the fields that time the run.
    func withoutTimings(_ text: String) throws -> [String] {
        try text.split(separator: "\n").map { line in
            var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            object["encode_ms"] = nil
            object["prune_ms"] = nil
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
    }

    func testStatsLinesAreUnchanged() throws {
        let cases = [("smolvlm", "media/bigbuckbunny.mp4", "models/demo-smolvlm2", "3"),
                     ("qwen", "media/aspect-16x9.mp4", "Tests/Fixtures/qwen25vl-tiny", "4")]
        for (name, clip, model, frames) in cases {
            let result = try CLI.run(["stats", CLI.path(clip), "--model", CLI.path(model), "--frames", frames,
                                      "--budget", "0.33", "--format", "jsonl"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let expected = try String(contentsOfFile: Self.fixtures + "/\(name)-stats.jsonl", encoding: .utf8)
            let lines = try withoutTimings(result.stdout), reference = try withoutTimings(expected)
            XCTAssertEqual(lines.count, reference.count, name)
            XCTAssertEqual(lines, reference, name)
        }
    }

    func testEncodeFilesMatchTheEarlierBinary() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("single-view-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases = [("smolvlm", "models/demo-smolvlm2", "media/bigbuckbunny.mp4", "3"),
                     ("qwen", "Tests/Fixtures/qwen25vl-tiny", "media/aspect-16x9.mp4", "4")]
        for (name, model, clip, frames) in cases {
            let out = folder.appendingPathComponent("\(name).safetensors").path
            let result = try CLI.run(["encode", CLI.path(model), CLI.path(clip), "--frames", frames, "--out", out,
                                      "--layers", "all", "--budget", "0.33"])
            XCTAssertEqual(result.status, 0, result.stderr)
            try assertSameEncoding(out, Self.fixtures + "/\(name)-encode.safetensors", name)
        }
    }

    /// The same tensors (names, dtypes, shapes, metadata), kept indices identical, features and scores
    /// equal up to the rounding of the GEMM's summation order (the encoder's kernels may change it:
    /// 1e-4 relative for features, 1e-5 for scores, the project's parity bounds).
    func assertSameEncoding(_ path: String, _ referencePath: String, _ name: String) throws {
        let written = try SafeTensorsFile(path: path), expected = try SafeTensorsFile(path: referencePath)
        XCTAssertEqual(written.entries.keys.sorted(), expected.entries.keys.sorted(), name)
        XCTAssertEqual(written.metadata, expected.metadata, name)
        for (tensor, entry) in expected.entries {
            let got = try XCTUnwrap(written.entries[tensor], "\(name) \(tensor)")
            XCTAssertEqual(got.dtype, entry.dtype, "\(name) \(tensor)")
            XCTAssertEqual(got.shape, entry.shape, "\(name) \(tensor)")
            if entry.dtype == "F32" {
                let bound: Float = tensor.hasSuffix(".scores") ? 1e-5 : 1e-4
                XCTAssertLessThanOrEqual(relativeError(try written.floats(tensor), try expected.floats(tensor)), bound, "\(name) \(tensor)")
            } else {
                XCTAssertEqual(try written.int32s(tensor), try expected.int32s(tensor), "\(name) \(tensor)")
            }
        }
    }
}
