import Foundation
import TestSupport
import XCTest

/// `ask` and `live` with `--method hiprune++` on Tests/Fixtures/hiprune-pp/frames.mkv (the smolvlm-vqa
/// fixture's three frames, lossless at 1 fps), against tools/make_hiprune_pp_fixtures.py: each
/// question's answer is transformers' greedy answer fed the tokens that question keeps.
final class HiPrunePlusPlusCLITests: XCTestCase {
    let model = CLI.path("Tests/Fixtures/smolvlm-vqa")
    let clip = CLI.path("Tests/Fixtures/hiprune-pp/frames.mkv")

    struct Question { var question: String; var tokens: [Int]; var answer: String; var liveAnswer: String; var kept: Int }

    func reference() throws -> (questions: [Question], flags: [String]) {
        let json = try Fixtures.json("hiprune-pp", "reference.json")
        let questions = try XCTUnwrap(json["questions"] as? [[String: Any]]).map { q -> Question in
            let frames = try XCTUnwrap(q["frames"] as? [[String: Any]])
            return Question(question: try XCTUnwrap(q["question"] as? String), tokens: try XCTUnwrap(q["tokens"] as? [Int]),
                            answer: try XCTUnwrap(q["answer"] as? String), liveAnswer: try XCTUnwrap(q["live_answer"] as? String),
                            kept: try frames.map { try XCTUnwrap($0["indices"] as? [Int]).count }.reduce(0, +))
        }
        let flags = ["--method", "hiprune++", "--tokens", "\(try XCTUnwrap(json["budget"] as? Int))",
                     "--alpha", "\(try XCTUnwrap(json["alpha"] as? Double))", "--beta", "\(try XCTUnwrap(json["beta"] as? Double))",
                     "--object-layer", "\(try XCTUnwrap(json["object_layer"] as? Int))",
                     "--deep-layer", "\(try XCTUnwrap(json["deep_layer"] as? Int))"]
        return (questions, flags)
    }

    /// Two questions: each re-prunes the frames for itself, and each answer's token ids are
    /// transformers' for that question's kept features (12 greedy tokens; the reference holds no
    /// stop token among them).
    func testAskReprunesPerQuestionAndEachAnswerIsTransformers() throws {
        let (questions, flags) = try reference()
        XCTAssertEqual(questions.count, 2)
        let count = questions[0].tokens.count
        let result = try CLI.run(["ask", clip, questions[0].question, "--question", questions[1].question, "--model", model,
                                  "--frames", "3", "--max-tokens", "\(count)", "--temperature", "0", "--json"] + flags)
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(CLI.events(result.stdout).first, result.stdout)
        XCTAssertEqual(object["frames"] as? Int, 3)
        let answers = try XCTUnwrap(object["answers"] as? [[String: Any]])
        XCTAssertEqual(answers.count, questions.count)
        for (answer, expected) in zip(answers, questions) {
            XCTAssertEqual(answer["question"] as? String, expected.question)
            XCTAssertEqual(answer["token_ids"] as? [Int], expected.tokens, expected.question)
            XCTAssertEqual(answer["answer"] as? String, expected.answer, expected.question)
        }
        XCTAssertEqual(object["visual_tokens_after"] as? Int, questions[1].kept, "the last question's frames are reported")
    }

    /// `live` with HiPrune++ and one standing question, answering after every frame (each frame
    /// takes at least 5 ms, the answers are due every 1 ms: no wall-clock race): the answer
    /// over the window of all three frames is transformers' for the tokens that question keeps.
    func testLiveAnswersWithTheQuestionsSelection() throws {
        let (questions, flags) = try reference()
        let question = questions[0]
        let result = try CLI.run(["live", clip, "--model", model, "--question", question.question, "--every", "1ms", "--throttle-milliseconds", "5",
                                  "--window", "3", "--fps", "1", "--capacity", "64", "--max-reconnects", "0",
                                  "--max-tokens", "\(question.tokens.count)", "--temperature", "0"] + flags)
        XCTAssertEqual(result.status, 0, result.stderr)
        let events = CLI.events(result.stdout)
        let frames = events.filter { $0["event"] as? String == "frame" }
        XCTAssertEqual(frames.count, 3, result.stdout)
        XCTAssertEqual(frames.compactMap { $0["tokens_after"] as? Int }.reduce(0, +), question.kept)
        XCTAssertTrue(frames.contains { ($0["prompt"] as? Int ?? 0) > 0 }, "HiPrune++ chose prompt tokens: \(result.stdout)")
        let full = events.filter { $0["event"] as? String == "answer" && $0["frames"] as? Int == 3 }
        XCTAssertEqual(full.count, 1, result.stdout)
        XCTAssertEqual(full.first?["question"] as? String, question.question)
        XCTAssertEqual(full.first?["answer"] as? String, question.liveAnswer)
    }
}
