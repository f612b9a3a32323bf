import Foundation
import TestSupport
import XCTest

/// The real SmolLM2 Q4_1 GGUF (`make models`) kept quantized, through the CLI.
final class QuantCLITests: XCTestCase {
    private func smolLM2() throws -> String { try Fixtures.smolLM2() }

    /// Every row of a quantized product is computed whole by one thread, so the decode team's size
    /// cannot change a number: 1, 2 and 3 threads (HIPRUNE_THREADS) give the same greedy answer, for
    /// the file's Q4_1 blocks (QuantizedWeightTests compare the team with one thread for every format).
    func testAnswersDoNotDependOnTheThreadCount() throws {
        let model = try smolLM2()
        for weights in ["stored"] {
            var answers: [String] = []
            for threads in ["1", "2", "3"] {
                let result = try CLI.run(["chat", "--model", model, "--weights", weights, "--max-tokens", "24",
                                          "What is the capital of Germany?"], environment: ["HIPRUNE_THREADS": threads])
                XCTAssertEqual(result.status, 0, result.stderr)
                answers.append(result.stdout)
            }
            XCTAssertTrue(answers[0].lowercased().contains("berlin"), answers[0])
            XCTAssertEqual(answers[1], answers[0], "\(weights): 2 threads")
            XCTAssertEqual(answers[2], answers[0], "\(weights): 3 threads")
        }
    }
}
