import Foundation
import TestSupport
import XCTest
import VLM

/// The sampler's distribution against transformers' logits processors, as `generate(do_sample=True)`
/// orders them (tools/make_sampling_fixtures.py writes Tests/Fixtures/sampling/transformers.json),
/// and its draws against that distribution.
final class SamplingTests: XCTestCase {
    struct Case: Decodable {
        var name: String
        var logits: [Float]
        var prompt_ids: [Int]
        var temperature: Float
        var top_k: Int
        var top_p: Float
        var repetition_penalty: Float
        var processors: [String]
        var probabilities: [Double]

        var parameters: SamplingParameters {
            SamplingParameters(temperature: temperature, topP: top_p, topK: top_k, repetitionPenalty: repetition_penalty, seed: 1)
        }
    }

    func cases() throws -> [Case] {
        struct File: Decodable { var cases: [Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sampling", "transformers.json")))
        return try JSONDecoder().decode(File.self, from: data).cases
    }

    func sampler(_ c: Case) throws -> Sampler {
        var sampler = try Sampler(parameters: c.parameters)
        sampler.observe(c.prompt_ids, vocabulary: c.logits.count)
        return sampler
    }

    /// Every case's probabilities within 1e-6 of transformers', and the same tokens at exactly 0.
    func testDistributionsEqualTransformersProcessors() throws {
        let all = try cases()
        XCTAssertEqual(all.count, 13)
        XCTAssertTrue(all.contains { $0.name.contains("tie at k") }, "a case with a tie at the k-th place")
        XCTAssertTrue(all.contains { $0.processors.count == 4 }, "cases with all four processors composed")
        for c in all {
            var sampler = try sampler(c)
            var logits = c.logits
            let probabilities = sampler.distribution(&logits).probabilities(vocabulary: c.logits.count)
            XCTAssertEqual(probabilities.count, c.probabilities.count, c.name)
            guard probabilities.count == c.probabilities.count else { continue }
            let worst = zip(probabilities, c.probabilities).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-6, c.name)
            XCTAssertEqual(probabilities.map { $0 > 0 }, c.probabilities.map { $0 > 0 }, "\(c.name): the kept tokens")
        }
    }

    /// Greedy (temperature 0) puts all the mass on the penalised logits' argmax, lowest id among equals.
    func testGreedyIsTheArgmaxAfterThePenalty() throws {
        var sampler = try Sampler(parameters: SamplingParameters(temperature: 0, repetitionPenalty: 2))
        sampler.observe([0], vocabulary: 4)
        var logits: [Float] = [3, 2, 2, -1]  // token 0 penalised to 1.5: tokens 1 and 2 tie, 1 wins
        XCTAssertEqual(sampler.distribution(&logits), TokenDistribution(tokens: [1], weights: [1]))
        logits = [3, 2, 2, -1]
        XCTAssertEqual(sampler.next(&logits), 1)
    }

    /// A seeded run of 100 000 draws from three cases' distributions: each token's count lies within
    /// 5 binomial standard deviations of N·p (a false alarm per token has probability 5.7e-7, below
    /// 4e-5 over the 64 tokens of a case), and a token of probability 0 is never drawn.
    func testDrawsFollowTheDistribution() throws {
        let draws = 100_000
        for c in try cases() where ["all four, defaults of the CLI", "top-k 5", "repetition penalty 0.8"].contains(where: c.name.hasPrefix) {
            var sampler = try sampler(c)
            var counts = [Int](repeating: 0, count: c.logits.count)
            for _ in 0..<draws {
                var logits = c.logits
                counts[sampler.next(&logits)] += 1
            }
            for (token, p) in c.probabilities.enumerated() {
                let expected = Double(draws) * p
                let sigma = (Double(draws) * p * (1 - p)).squareRoot()
                if p == 0 {
                    XCTAssertEqual(counts[token], 0, "\(c.name): token \(token) has probability 0")
                } else {
                    XCTAssertLessThanOrEqual(abs(Double(counts[token]) - expected), 5 * sigma,
                                             "\(c.name): token \(token) drawn \(counts[token]) times, expected \(expected) ± \(sigma)")
                }
            }
        }
    }
}
