import Foundation
import XCTest
@testable import VLM
import TestSupport

/// The video prompt against the text and ids transformers' SmolVLMProcessor builds
/// (tools/make_prompt_fixtures.py).
final class SmolVLMVideoPromptTests: XCTestCase {
    struct Case: Decodable {
        var times: [Double]
        var duration: Double
        var image_tokens: Int
        var question: String
        var text: String
        var ids: [Int]
    }

    func loadCases() throws -> [Case] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("prompt", "smolvlm-video.json")))
        return try JSONDecoder().decode([Case].self, from: data)
    }

    func testPromptTextAndIdsMatchTheReferenceProcessor() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Fixtures.path("tokenizer", "tokenizer.json"))
        let cases = try loadCases()
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for (n, c) in cases.enumerated() {
            let prompt = SmolVLMVideoPrompt(frames: c.times.map { .init(time: $0, imageTokens: c.image_tokens) },
                                            duration: c.duration)
            let text = prompt.text(question: c.question)
            XCTAssertEqual(text, c.text, "case \(n): prompt text")
            let ids = tokenizer.encode(text)
            XCTAssertEqual(ids, c.ids, "case \(n): token ids")
            let imageID = try XCTUnwrap(tokenizer.id(of: SmolVLMVideoPrompt.imageToken))
            XCTAssertEqual(ids.filter { $0 == imageID }.count, c.times.count * c.image_tokens, "case \(n): image runs")
        }
    }

    func testNumberWordsFollowNum2Words() {
        let expected: [(Int, String)] = [
            (0, "zero"), (1, "one"), (8, "eight"), (13, "thirteen"), (20, "twenty"), (21, "twenty-one"),
            (64, "sixty-four"), (99, "ninety-nine"), (100, "one hundred"), (105, "one hundred and five"),
            (120, "one hundred and twenty"), (999, "nine hundred and ninety-nine"), (1000, "one thousand"),
            (1001, "one thousand and one"), (1100, "one thousand, one hundred"),
            (2112, "two thousand, one hundred and twelve"), (12345, "twelve thousand, three hundred and forty-five"),
        ]
        for (n, words) in expected { XCTAssertEqual(numberInWords(n), words, "\(n)") }
    }

    func testFramesKeepTheirOwnKeptCounts() throws {
        let prompt = SmolVLMVideoPrompt(frames: [.init(time: 0, imageTokens: 3), .init(time: 75.9, imageTokens: 0)],
                                        duration: 80)
        let text = prompt.text(question: "Q")
        XCTAssertTrue(text.contains("two frames from a 0:01:20 [H:MM:SS] video."))
        XCTAssertTrue(text.contains("\nFrame from 01:15:<fake_token_around_image><global-img><fake_token_around_image>"))
        XCTAssertEqual(text.components(separatedBy: "<image>").count - 1, 3)
    }
}
