import Foundation
import XCTest

/// Frames became lists of views (AnyRes); families of one view per frame must give exactly the
/// outputs they gave before, compared with files the earlier binary wrote (Fixtures/single-view).
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

    func testEncodeFilesAreByteIdentical() throws {
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
            let written = try Data(contentsOf: URL(fileURLWithPath: out))
            let expected = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/\(name)-encode.safetensors"))
            XCTAssertEqual(written, expected, name)
        }
    }
}
