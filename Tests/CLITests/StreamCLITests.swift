import Foundation
import TestSupport
import XCTest

/// `hiprune-video frames` and `probe` as a user runs them, checked against the ffprobe ground truth in
/// Tests/Fixtures/stream (made by tools/make-stream-fixtures.py), never against our own earlier output.
final class StreamCLITests: XCTestCase {
    /// One clip's ffprobe facts and, per sampling mode, the (source frame, time) pairs it must give.
    struct Fixture {
        struct Mode {
            var name: String
            var arguments: [String]
            var expected: [(source: Int, time: Double)]
        }
        var width: Int, height: Int, rotation: Int
        var codec: String
        var duration: Double?, frameRate: Double?, frameCount: Int?
        var modes: [String: Mode]

        init(clip: String) throws {
            let name = clip.replacingOccurrences(of: ".", with: "_")
            let data = try Data(contentsOf: URL(fileURLWithPath: CLI.path("Tests/Fixtures/stream/\(name).json")))
            let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let info = try XCTUnwrap(root["info"] as? [String: Any])
            width = try XCTUnwrap(info["width"] as? Int)
            height = try XCTUnwrap(info["height"] as? Int)
            rotation = try XCTUnwrap(info["rotation"] as? Int)
            codec = try XCTUnwrap(info["codec"] as? String)
            duration = info["duration"] as? Double
            frameRate = info["frame_rate"] as? Double
            frameCount = info["frame_count"] as? Int
            modes = [:]
            for mode in try XCTUnwrap(root["modes"] as? [[String: Any]]) {
                let name = try XCTUnwrap(mode["name"] as? String)
                var arguments: [String] = []
                switch try XCTUnwrap(mode["sampling"] as? String) {
                case "fps": arguments += ["--fps", "\(try XCTUnwrap(mode["value"] as? Double))"]
                case "uniform": arguments += ["--frames", "\(try XCTUnwrap(mode["value"] as? Int))"]
                default: arguments += ["--every-frame"]
                }
                if let start = mode["start"] as? Double { arguments += ["--start", "\(start)"] }
                if let end = mode["end"] as? Double { arguments += ["--end", "\(end)"] }
                if mode["keyframes"] as? Bool == true { arguments += ["--keyframes"] }
                let pairs = try XCTUnwrap(mode["expected"] as? [[Any]])
                let expected = try pairs.map { pair in
                    (source: try XCTUnwrap(pair.first as? Int), time: try XCTUnwrap(pair.last as? Double))
                }
                modes[name] = Mode(name: name, arguments: arguments, expected: expected)
            }
        }
    }

    /// A parsed `frame I source S time T size WxH` line.
    struct FrameLine: Equatable {
        var index: Int, source: Int, time: Double, width: Int, height: Int

        init?(_ line: String) {
            let words = line.split(separator: " ")
            guard words.count == 8, words[0] == "frame", words[2] == "source", words[4] == "time", words[6] == "size",
                  let index = Int(words[1]), let source = Int(words[3]), let time = Double(words[5]) else { return nil }
            let size = words[7].split(separator: "x")
            guard size.count == 2, let width = Int(size[0]), let height = Int(size[1]) else { return nil }
            self.index = index
            self.source = source
            self.time = time
            self.width = width
            self.height = height
        }
    }

    /// Runs `frames` on `clip` in `mode` and checks every line against the fixture.
    func checkFrames(_ clip: String, _ modeName: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fixture = try Fixture(clip: clip)
        let mode = try XCTUnwrap(fixture.modes[modeName], "\(clip) has no fixture mode \(modeName)", file: file, line: line)
        let result = try CLI.run(["frames", CLI.path("media/\(clip)")] + mode.arguments)
        let context = "\(clip) \(modeName) \(mode.arguments.joined(separator: " "))"
        XCTAssertEqual(result.status, 0, "\(context): \(result.stderr)", file: file, line: line)
        let frames = result.stdoutLines.compactMap(FrameLine.init)
        XCTAssertEqual(frames.count, result.stdoutLines.count, "\(context): every line is a frame line", file: file, line: line)
        XCTAssertEqual(frames.count, mode.expected.count, "\(context): frame count", file: file, line: line)
        for (i, (frame, truth)) in zipSameLength(frames, mode.expected).enumerated() {
            XCTAssertEqual(frame.index, i, "\(context): index", file: file, line: line)
            XCTAssertEqual(frame.source, truth.source, "\(context): source frame of sample \(i)", file: file, line: line)
            XCTAssertEqual(frame.time, truth.time, accuracy: 1e-5, "\(context): time of sample \(i)", file: file, line: line)
            if fixture.rotation == 0 {
                XCTAssertEqual(frame.width, fixture.width, "\(context): width", file: file, line: line)
                XCTAssertEqual(frame.height, fixture.height, "\(context): height", file: file, line: line)
            }
        }
    }

    func testFramesEveryModeOnSmallClip() throws {
        let fixture = try Fixture(clip: "aspect-16x9.mp4")
        XCTAssertEqual(fixture.modes.count, 14)
        for name in fixture.modes.keys.sorted() { try checkFrames("aspect-16x9.mp4", name) }
    }

    func testFramesVariableFrameRate() throws {
        for name in ["every", "fps-4", "fps-10", "uniform-8", "range-fps-5", "range-uniform-4", "keyframes-range"] {
            try checkFrames("vfr.mp4", name)
        }
    }

    func testFramesRealClips() throws {
        for name in ["every", "fps-1", "uniform-8", "range-every", "keyframes"] { try checkFrames("bigbuckbunny.mp4", name) }
        for name in ["fps-10", "range-uniform-4"] { try checkFrames("carphone_distorted.mp4", name) }
        for name in ["fps-4", "uniform-3"] { try checkFrames("odd-367x211.webm", name) }
    }

    /// No sampling flag means every frame.
    func testFramesDefaultsToEveryFrame() throws {
        let fixture = try Fixture(clip: "vp9.webm")
        let result = try CLI.run(["frames", CLI.path("media/vp9.webm")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let frames = result.stdoutLines.compactMap(FrameLine.init)
        XCTAssertEqual(frames.map(\.source), try XCTUnwrap(fixture.modes["every"]).expected.map(\.source))
    }

    func testFramesJSONLines() throws {
        let fixture = try Fixture(clip: "aspect-4x3.mp4")
        let truth = try XCTUnwrap(fixture.modes["uniform-8"]).expected
        let result = try CLI.run(["frames", CLI.path("media/aspect-4x3.mp4"), "--frames", "8", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdoutLines.count, 8)
        let events = CLI.events(result.stdout)
        XCTAssertEqual(events.count, 8, "every line is one JSON object: \(result.stdout)")
        for (i, (event, expected)) in zipSameLength(events, truth).enumerated() {
            XCTAssertEqual(event["index"] as? Int, i)
            XCTAssertEqual(event["source_frame"] as? Int, expected.source)
            XCTAssertEqual(try XCTUnwrap(event["time"] as? Double), expected.time, accuracy: 1e-5)
            XCTAssertEqual(event["width"] as? Int, fixture.width)
            XCTAssertEqual(event["height"] as? Int, fixture.height)
        }
    }

    /// The policies' documented sizes for a 100x50 box on 16:9 (320x180) and 9:16 (180x320) sources.
    func testResizePolicies() throws {
        let cases: [(clip: String, policy: String, width: Int, height: Int)] = [
            ("aspect-16x9.mp4", "exact", 100, 50), ("aspect-16x9.mp4", "fit", 100, 50), ("aspect-16x9.mp4", "longest", 100, 56),
            ("aspect-9x16.mp4", "exact", 100, 50), ("aspect-9x16.mp4", "fit", 100, 50), ("aspect-9x16.mp4", "longest", 56, 100),
        ]
        for c in cases {
            let result = try CLI.run(["frames", CLI.path("media/\(c.clip)"), "--frames", "2", "--size", "100x50",
                                      "--resize", c.policy])
            XCTAssertEqual(result.status, 0, result.stderr)
            let frames = result.stdoutLines.compactMap(FrameLine.init)
            XCTAssertEqual(frames.count, 2, "\(c.clip) \(c.policy)")
            for frame in frames {
                XCTAssertEqual(frame.width, c.width, "\(c.clip) \(c.policy)")
                XCTAssertEqual(frame.height, c.height, "\(c.clip) \(c.policy)")
            }
        }
    }

    /// `--dump` PNGs read back through our own decoder (`probe --json`) at the printed size, and their IHDR agrees.
    func testDumpWritesReadablePNGs() throws {
        let directory = try temporaryDirectory("stream-cli-dump")
        let dump = directory.appendingPathComponent("nested").path  // created on demand
        let result = try CLI.run(["frames", CLI.path("media/odd-367x211.webm"), "--frames", "3", "--size", "100x50",
                                  "--resize", "longest", "--dump", dump])
        XCTAssertEqual(result.status, 0, result.stderr)
        let frames = result.stdoutLines.compactMap(FrameLine.init)
        XCTAssertEqual(frames.count, 3)
        let names = try FileManager.default.contentsOfDirectory(atPath: dump).sorted()
        XCTAssertEqual(names, ["frame-000000.png", "frame-000001.png", "frame-000002.png"])
        // 367x211 with the longest edge to 100: 100 x round(211 * 100 / 367) = 100 x 57.
        for (name, frame) in zipSameLength(names, frames) {
            XCTAssertEqual(frame.width, 100)
            XCTAssertEqual(frame.height, 57)
            let path = (dump as NSString).appendingPathComponent(name)
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(name): PNG signature")
            func be32(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
            XCTAssertGreaterThan(bytes.count, 33)
            if bytes.count > 33 {
                XCTAssertEqual(String(decoding: bytes[12..<16], as: UTF8.self), "IHDR")
                XCTAssertEqual(be32(16), frame.width, "\(name): IHDR width")
                XCTAssertEqual(be32(20), frame.height, "\(name): IHDR height")
                XCTAssertEqual(bytes[24], 8, "\(name): 8 bits per channel")
                XCTAssertEqual(bytes[25], 2, "\(name): colour type RGB")
            }
            let probe = try CLI.run(["probe", path, "--json"])
            XCTAssertEqual(probe.status, 0, probe.stderr)
            let info = try XCTUnwrap(CLI.events(probe.stdout).first, probe.stdout)
            XCTAssertEqual(info["codec"] as? String, "png")
            XCTAssertEqual(info["width"] as? Int, frame.width)
            XCTAssertEqual(info["height"] as? Int, frame.height)
            let back = try CLI.run(["frames", path])
            XCTAssertEqual(back.stdoutLines.compactMap(FrameLine.init).map { "\($0.width)x\($0.height)" }, ["100x57"],
                           "\(name) decodes as one 100x57 frame")
        }
    }

    func testProbeText() throws {
        for clip in ["rotated-90.mp4", "bigbuckbunny.mp4", "vp9.webm"] {
            let fixture = try Fixture(clip: clip)
            let result = try CLI.run(["probe", CLI.path("media/\(clip)")])
            XCTAssertEqual(result.status, 0, result.stderr)
            var facts: [String: String] = [:]
            for line in result.stdoutLines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                facts[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            XCTAssertEqual(facts["codec"], fixture.codec, clip)
            XCTAssertEqual(facts["size"], "\(fixture.width)x\(fixture.height)", clip)
            XCTAssertEqual(facts["rotation"], "\(fixture.rotation)", clip)
            if let duration = fixture.duration {
                XCTAssertEqual(try XCTUnwrap(Double(facts["duration"] ?? ""), clip), duration, accuracy: 1e-3, clip)
            }
            if let rate = fixture.frameRate {
                XCTAssertEqual(try XCTUnwrap(Double(facts["frame rate"] ?? ""), clip), rate, accuracy: 1e-3, clip)
            }
        }
        XCTAssertEqual(try Fixture(clip: "rotated-90.mp4").rotation, 90, "the fixture itself says 90")
    }

    func testProbeJSON() throws {
        for clip in ["bigbuckbunny.mp4", "rotated-90.mp4", "carphone_distorted.mp4"] {
            let fixture = try Fixture(clip: clip)
            let result = try CLI.run(["probe", CLI.path("media/\(clip)"), "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stdoutLines.count, 1, "one JSON object")
            let info = try XCTUnwrap(CLI.events(result.stdout).first, result.stdout)
            XCTAssertEqual(info["codec"] as? String, fixture.codec, clip)
            XCTAssertEqual(info["width"] as? Int, fixture.width, clip)
            XCTAssertEqual(info["height"] as? Int, fixture.height, clip)
            XCTAssertEqual(info["rotation"] as? Int, fixture.rotation, clip)
            XCTAssertEqual(try XCTUnwrap(info["duration"] as? Double, clip), try XCTUnwrap(fixture.duration), accuracy: 1e-3)
            XCTAssertEqual(try XCTUnwrap(info["frameRate"] as? Double, clip), try XCTUnwrap(fixture.frameRate), accuracy: 1e-3)
            if let count = fixture.frameCount { XCTAssertEqual(info["frameCount"] as? Int, count, clip) }
        }
    }

    /// Runs `frames -` with `clip` as the process's stdin (CLI.run gives /dev/null).
    func framesFromStdin(_ clip: String) throws -> CLI.Result {
        let process = Process()
        process.executableURL = try CLI.binary()
        process.arguments = ["frames", "-"]
        process.currentDirectoryURL = CLI.repository
        let input = try XCTUnwrap(FileHandle(forReadingAtPath: CLI.path("media/\(clip)")))
        defer { try? input.close() }
        let out = Pipe(), err = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        let running = CLI.Running(process: process, out: out, err: err)
        try process.run()
        Wait.until { !process.isRunning }
        if process.isRunning { process.terminate() }
        return running.finish()
    }

    /// `frames -` finds as many frames, at the same times, as ffprobe does in the file.
    func checkStdin(_ clip: String) throws {
        let truth = try XCTUnwrap(try Fixture(clip: clip).modes["every"]).expected
        let result = try framesFromStdin(clip)
        XCTAssertEqual(result.status, 0, "\(clip): \(result.stderr)")
        let frames = result.stdoutLines.compactMap(FrameLine.init)
        XCTAssertEqual(frames.count, truth.count, clip)
        XCTAssertEqual(frames.map(\.source), truth.map(\.source), clip)
        for (frame, expected) in zipSameLength(frames, truth) { XCTAssertEqual(frame.time, expected.time, accuracy: 1e-5, clip) }
    }

    func testFramesFromStdin() throws {
        try checkStdin("vp9.webm")
        try checkStdin("aspect-16x9.mp4")  // moov after mdat, but small enough for FFmpeg's read buffer
    }

    /// bigbuckbunny.mp4 keeps its moov atom after 1 MB of mdat: on a non-seekable pipe:0 the demuxer
    /// could not go back for the samples (the ffmpeg CLI fails the same way); a regular file given as
    /// stdin is opened seekably, so every frame comes out as ffprobe counts them.
    func testFramesFromStdinMoovAtEnd() throws {
        try checkStdin("bigbuckbunny.mp4")
    }

    /// Each broken input: one stderr line naming it, a non-zero exit, nothing on stdout.
    func testBrokenInputsFailWithOneLine() throws {
        let inputs = ["media/empty.mp4", "media/audio-only.m4a", "media/not-a-video.mp4", "media/no-such-clip.mp4"].map(CLI.path)
        for input in inputs {
            for arguments in [["frames", input], ["frames", input, "--json", "--frames", "4"], ["probe", input]] {
                let result = try CLI.run(arguments)
                let context = arguments.joined(separator: " ")
                XCTAssertNotEqual(result.status, 0, context)
                XCTAssertEqual(result.stdout, "", "\(context): nothing on stdout")
                XCTAssertEqual(result.stderrLines.count, 1, "\(context): exactly one line: \(result.stderr)")
                XCTAssertTrue(result.stderr.contains(input), "\(context): names the input: \(result.stderr)")
            }
        }
    }

    /// truncated.mp4's header is whole (50 frames) but its data stops inside the 17th packet. A file's
    /// output is held until it decoded cleanly, so: one stderr line naming the file and the cause, a
    /// non-zero exit, nothing on stdout and no PNG left behind.
    func testTruncatedInputEndsWithOneLine() throws {
        let input = CLI.path("media/truncated.mp4")
        let dump = FileManager.default.temporaryDirectory.appendingPathComponent("hv-trunc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dump) }
        for arguments in [["frames", input], ["frames", input, "--json"], ["frames", input, "--dump", dump]] {
            let result = try CLI.run(arguments)
            let context = arguments.joined(separator: " ")
            XCTAssertNotEqual(result.status, 0, context)
            XCTAssertEqual(result.stderrLines.count, 1, "\(context): exactly one line: \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(input), "\(context): names the input: \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("truncated"), "\(context): says why: \(result.stderr)")
            XCTAssertEqual(result.stdout, "", "\(context): nothing half-written on stdout")
        }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: dump)) ?? [], [], "no PNG of a broken file")
    }
}
