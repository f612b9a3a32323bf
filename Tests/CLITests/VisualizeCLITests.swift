import Foundation
import Stream
import XCTest

/// `visualize` as a user runs it: PNGs in a directory, an MP4 our decoder reads back, bad paths.
final class VisualizeCLITests: XCTestCase {
    let model = CLI.path("Tests/Fixtures/smolvlm-vqa")
    let clip = CLI.path("media/bigbuckbunny.mp4")

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("visualize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testDirectoryGetsOnePNGPerSampledFrameAtTheSourceSize() async throws {
        let out = try scratch().appendingPathComponent("frames")
        let result = try CLI.run(["visualize", clip, "--model", model, "-o", out.path + "/", "--frames", "3", "--grid"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderrLines.count, 1, "one legend line: \(result.stderr)")
        XCTAssertTrue(result.stderr.hasPrefix("legend: anchor yellow"), result.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        XCTAssertEqual(names, ["frame-000000.png", "frame-000001.png", "frame-000002.png"])
        var count = 0
        for try await frame in VideoFrames(input: out.appendingPathComponent("frame-000001.png").path) {
            XCTAssertEqual([frame.width, frame.height], [1280, 720])
            count += 1
        }
        XCTAssertEqual(count, 1)
    }

    func testMP4ReadsBackWithTheSampledFrameCountAndSize() async throws {
        let dir = try scratch()
        let out = dir.appendingPathComponent("overlay.mp4")
        let result = try CLI.run(["visualize", clip, "--model", model, "-o", out.path, "--fps", "2", "--end", "2",
                                  "--size", "320x180", "--tokens", "6"])
        XCTAssertEqual(result.status, 0, result.stderr)
        var sizes: [[Int]] = []
        for try await frame in VideoFrames(input: out.path) { sizes.append([frame.width, frame.height]) }
        XCTAssertEqual(sizes, Array(repeating: [320, 180], count: 4), "ticks 0, 0.5, 1, 1.5 s")
        let info = try VideoSourceInfo.probe(out.path)
        XCTAssertEqual(info.frameRate ?? 0, 2, accuracy: 0.01)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["overlay.mp4"], "no temporary left")
    }

    func testBadOutputGivesOneLineAndNoFile() throws {
        let dir = try scratch()
        let cases: [(String, String)] = [
            (dir.appendingPathComponent("missing/out.mp4").path, "does not exist"),
            (dir.appendingPathComponent("out.txt").path, "use a .mp4"),
        ]
        for (path, expected) in cases {
            let result = try CLI.run(["visualize", clip, "--model", model, "-o", path, "--frames", "1"])
            XCTAssertNotEqual(result.status, 0, path)
            XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(expected), result.stderr)
        }
        // A failing input after the output was checked: nothing half-written either.
        let result = try CLI.run(["visualize", dir.appendingPathComponent("nothing.mp4").path, "--model", model,
                                  "-o", dir.appendingPathComponent("out.mp4").path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("no such file"), result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
