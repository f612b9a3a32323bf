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

    /// Resident memory of the Q4_1 file kept quantized, as `chat` reports it after answering (from
    /// /proc/self): without the executable's and shared libraries' pages — about 45 MB that every
    /// run holds (Swift runtime, Foundation, FFmpeg and its codecs, OpenBLAS), a third of this small
    /// model's needs — the process holds at most 1.2× the weights plus its KV cache: the mapped
    /// weight pages, the Q/K rows it reorders, the cache, buffers, heap and thread stacks. With those
    /// pages the figure is printed; those pages are bounded by 64 MB.
    func testResidentMemoryIsAtMostTwelveTenthsOfWeightsAndCache() throws {
        let model = try smolLM2()
        let result = try CLI.run(["chat", "--model", model, "--max-tokens", "8", "--context", "512", "What is the capital of Germany?"])
        XCTAssertEqual(result.status, 0, result.stderr)
        guard let line = result.stderr.split(separator: "\n").first(where: { $0.hasPrefix("memory: ") }) else {
            return XCTFail("no memory line in: \(result.stderr)")
        }
        func number(before suffix: String) -> Double? {
            guard let end = line.range(of: suffix)?.lowerBound else { return nil }
            return Double(line[..<end].split(separator: " ").last ?? "")
        }
        guard let resident = number(before: " MB (peak"), let code = number(before: " MB of it executable"),
              let weights = number(before: " MB of weights"), let cache = number(before: " MB of KV cache"),
              let without = number(before: "x without") else { return XCTFail("unreadable: \(line)") }
        XCTAssertLessThanOrEqual(without, 1.2, String(line))
        XCTAssertEqual(without, (resident - code) / (weights + cache), accuracy: 0.01, String(line))
        XCTAssertLessThanOrEqual(code, 64, String(line))
        XCTAssertGreaterThan(weights, 90, String(line))  // the weights are held quantized, not widened
    }
}
