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
}
