import Foundation
import TestSupport
import XCTest

/// The LLaVA families through the commands, on their tiny fixtures (tools/make_llava_fixtures.py).
final class LlavaCLITests: XCTestCase {
    let clip = CLI.path("media/aspect-16x9.mp4")

    /// stats: the tokens each family gives a 16:9 frame and the budget kept over its views.
    func testStatsCountEachFamilysTokensAndViews() throws {
        // LLaVA-1.5: one 24x24 view; NeXT: the base 8x8 and the 2x2 crops of 64x64 un-padded to 5x8;
        // NeXT-Video: 24x24 pooled to 12x12.
        for (name, grid, tokens, views) in [("llava-tiny", "24x24", 576, 1), ("llava-next-tiny", "8x8+5x8x4", 224, 5),
                                            ("llava-next-video-tiny", "12x12", 144, 1)] {
            let result = try CLI.run(["stats", clip, "--model", Fixtures.path(name), "--frames", "2", "--budget", "0.33",
                                      "--format", "jsonl"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let frames = CLI.events(result.stdout).dropLast()
            XCTAssertEqual(frames.count, 2, name)
            for frame in frames {
                XCTAssertEqual(frame["grid"] as? String, grid, name)
                XCTAssertEqual(frame["tokens_before"] as? Int, tokens, name)
                XCTAssertEqual(frame["tokens_after"] as? Int, Int((0.33 * Double(tokens)).rounded(.toNearestOrEven)), name)
                XCTAssertEqual(frame["views"] as? Int ?? 1, views, name)
            }
        }
    }

    /// ask: each family answers, its prompt holding the kept tokens (plus NeXT's newline rows).
    func testAskAnswersWithEveryFamily() throws {
        for (name, before) in [("llava-tiny", 3 * 576), ("llava-next-tiny", 3 * 224), ("llava-next-video-tiny", 3 * 144)] {
            let result = try CLI.run(["ask", clip, "What happens?", "--model", Fixtures.path(name), "--frames", "3",
                                      "--max-tokens", "4", "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(CLI.events(result.stdout).first, name)
            XCTAssertEqual(object["visual_tokens_before"] as? Int, before, name)
            let after = try XCTUnwrap(object["visual_tokens_after"] as? Int)
            XCTAssertGreaterThan(try XCTUnwrap(object["prefill_tokens"] as? Int), after, name)
            XCTAssertFalse(try XCTUnwrap(object["token_ids"] as? [Int]).isEmpty, name)
        }
    }

    /// live on a real-time stream (loopback UDP, 3 s of a 4:3 test pattern) with each family: frame
    /// events carry the family's tokens and views, answers come over the window, the summary counts them.
    func testLiveAnswersWithEveryFamily() throws {
        // LLaVA-1.5: one 24x24 view; NeXT: base 8x8 and 2x2 crops (4:3 un-padded to 6x8 each); NeXT-Video: 12x12.
        for (name, tokens, views) in [("llava-tiny", 576, 1), ("llava-next-tiny", 256, 5), ("llava-next-video-tiny", 144, 1)] {
            let (live, url) = try CLI.startListening { url in
                ["live", url, "--model", Fixtures.path(name), "--question", "What moves?", "--every", "1s",
                 "--window", "2", "--fps", "2", "--max-tokens", "2", "--stall-timeout", "1",
                 "--open-timeout", "3", "--max-reconnects", "0"]
            }
            let streamer = try CLI.streamer(to: url, seconds: 3)
            streamer.waitUntilExit()
            // live gives up on its own once the stream has ended (--stall-timeout 1, no reconnects).
            let result = live.finish()
            XCTAssertEqual(result.status, 1, "gives up once the stream ends: \(result.stderr)")
            let events = CLI.events(result.stdout)
            let frames = events.filter { $0["event"] as? String == "frame" }
            XCTAssertGreaterThanOrEqual(frames.count, 2, "\(name): \(result.stdout)")
            for frame in frames {
                XCTAssertEqual(frame["tokens_before"] as? Int, tokens, name)
                XCTAssertEqual(frame["views"] as? Int ?? 1, views, name)
                XCTAssertLessThan(try XCTUnwrap(frame["tokens_after"] as? Int), tokens, name)
            }
            let answers = events.filter { $0["event"] as? String == "answer" }
            XCTAssertGreaterThanOrEqual(answers.count, 1, "\(name): \(result.stdout)")
            for answer in answers {
                XCTAssertEqual(answer["question"] as? String, "What moves?", name)
                XCTAssertTrue((1...2).contains(try XCTUnwrap(answer["frames"] as? Int)), name)
            }
            let summary = try XCTUnwrap(events.last)
            XCTAssertEqual(summary["event"] as? String, "summary", name)
            XCTAssertEqual(summary["answers"] as? Int, answers.count, name)
        }
    }
}
