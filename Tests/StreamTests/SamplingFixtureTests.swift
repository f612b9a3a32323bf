import Foundation
import TestSupport
import XCTest
@testable import Stream

/// Frame counts and timestamps against ffprobe's ground truth (tools/make-stream-fixtures.py).
final class SamplingFixtureTests: XCTestCase {
    static let root = URL(fileURLWithPath: Fixtures.repository)
    static let fixtures = URL(fileURLWithPath: Fixtures.path("stream"))

    struct Mode: Decodable {
        var name: String; var sampling: String; var value: Double?; var start: Double?; var end: Double?
        var keyframes: Bool; var expected: [[Double]]
    }
    struct Clip: Decodable { var clip: String; var modes: [Mode] }

    func testEveryClipEveryModeMatchesFFprobe() async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path)
            .filter { $0.hasSuffix(".json") && $0 != "smolvlm-sampling.json" }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for file in files {
            let clip = try JSONDecoder().decode(Clip.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent(file)))
            let path = Self.root.appendingPathComponent("media/\(clip.clip)").path
            // One-frame stills have an empty range; DecodeOptions rejects end <= start by design.
            for mode in clip.modes where !(mode.start != nil && (mode.end ?? .infinity) <= (mode.start ?? 0)) {
                var sampling = FrameSampling.everyFrame
                if mode.sampling == "fps" { sampling = .fps(mode.value ?? 1) }
                if mode.sampling == "uniform" { sampling = .uniform(count: Int(mode.value ?? 1)) }
                let options = DecodeOptions(sampling: sampling, keyframesOnly: mode.keyframes, start: mode.start,
                                            end: mode.end, size: FrameSize(width: 16, height: 16))
                var got: [(Int, Double)] = []
                for try await frame in VideoFrames(input: path, options: options) {
                    XCTAssertEqual(frame.index, got.count)
                    XCTAssertEqual(frame.rgb.count, 16 * 16 * 3)
                    got.append((frame.sourceFrameNumber, frame.time))
                }
                XCTAssertEqual(got.count, mode.expected.count, "\(clip.clip) \(mode.name)")
                for (g, e) in zipSameLength(got, mode.expected) {
                    XCTAssertEqual(g.0, Int(e[0]), "\(clip.clip) \(mode.name)")
                    XCTAssertEqual(g.1, e[1], accuracy: 1e-6, "\(clip.clip) \(mode.name)")
                }
            }
        }
    }

    func testSmolVLMIndicesMatchTransformers() throws {
        struct Case: Decodable { var total: Int; var fps: Double; var duration: Double; var max_frames: Int; var target_fps: Double; var indices: [Int] }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("smolvlm-sampling.json")))
        XCTAssertEqual(cases.count, 8)
        for c in cases {
            XCTAssertEqual(FrameSampling.smolVLMFrameIndices(totalFrames: c.total, duration: c.duration, videoFPS: c.fps,
                                                             maxFrames: c.max_frames, targetFPS: c.target_fps), c.indices)
        }
    }

    func testBrokenInputsGiveTypedErrors() async {
        func error(_ name: String) async -> StreamError? {
            do {
                for try await _ in VideoFrames(input: Self.root.appendingPathComponent("media/\(name)").path) {}
                return nil
            } catch { return error as? StreamError }
        }
        let media = Self.root.appendingPathComponent("media").path
        let missing = await error("missing.mp4"); XCTAssertEqual(missing, .fileNotFound(input: "\(media)/missing.mp4"))
        let empty = await error("empty.mp4"); XCTAssertEqual(empty, .emptyFile(input: "\(media)/empty.mp4"))
        let audio = await error("audio-only.m4a"); XCTAssertEqual(audio, .noVideoStream(input: "\(media)/audio-only.m4a"))
        guard case .notAVideo? = await error("not-a-video.mp4") else { return XCTFail("text file") }
        guard case .corrupt? = await error("truncated.mp4") else { return XCTFail("truncated file") }
    }
}
