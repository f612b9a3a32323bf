import Foundation
import XCTest
@testable import VLM
import TestSupport

/// The real SmolLM2-135M-Instruct (Q4_1 GGUF from scripts/fetch-smollm2.sh); skipped without it.
final class SmolLM2Tests: XCTestCase {
    private static let loaded = Result { try LanguageModel(path: try Fixtures.smolLM2()) }
    /// The same weights held as BF16 (rounded): half the bytes per decode step.
    private static let loadedBF16 = Result { try LanguageModel(path: try Fixtures.smolLM2(), precision: .bfloat16) }

    private func model(bf16: Bool = false) throws -> LanguageModel {
        let loaded = bf16 ? Self.loadedBF16 : Self.loaded
        if case let .failure(error) = loaded, error is XCTSkip { throw error }
        return try loaded.get()
    }

    private func answer(_ question: String, bf16: Bool = false) throws -> String {
        let language = try model(bf16: bf16)
        let ids = try language.chatPrompt([ChatMessage(role: "user", content: question)])
        let session = try DecoderSession(model: language.model, context: 512)
        let result = try session.generate(prompt: ids, options: GenerationOptions(maxNewTokens: 48, stopTokens: language.stopTokens))
        return language.tokenizer.decode(result.tokens, skipSpecialTokens: true)
    }

    func testChatTemplateIsSmolLM2s() throws {
        let language = try model()
        XCTAssertEqual(language.template, .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        XCTAssertTrue(language.stopTokens.contains(2))  // <|im_end|>
    }

    func testCapitalOfGermany() throws {
        let text = try answer("What is the capital of Germany?")
        XCTAssertTrue(text.lowercased().contains("berlin"), text)
    }

    func testTwoPlusTwo() throws {
        let text = try answer("What is 2 + 2?")
        XCTAssertTrue(text.contains("4"), text)
    }

    func testColorOfTheSky() throws {
        let text = try answer("What color is the sky on a clear day?")
        XCTAssertTrue(text.lowercased().contains("blue"), text)
    }

    /// Perplexity of a plain English paragraph (66 tokens). transformers, loading the same GGUF
    /// dequantized to Float32, gives 8.651855 (tools/make_lm_fixtures.py prints nothing for this;
    /// measured once with AutoModelForCausalLM.from_pretrained(gguf_file=…)). We require the same
    /// value to 1e-3 relative, and state a plain bound of 10 beside it.
    func testPerplexityOfAParagraph() throws {
        let perplexity = try perplexityOfParagraph(try model())
        XCTAssertEqual(perplexity, 8.651855, accuracy: 8.651855 * 1e-3)
        XCTAssertLessThan(perplexity, 10)
    }

    /// BF16 weights round every value to 8 significant bits: the answers stay and the perplexity
    /// moves by less than 2 % from transformers' F32 figure.
    func testBF16WeightsKeepTheAnswersAndThePerplexity() throws {
        let language = try model(bf16: true)
        XCTAssertTrue(language.model.decoder.holdsBF16)
        XCTAssertLessThan(language.model.decoder.weightBytes, try model().model.decoder.weightBytes * 52 / 100)
        let berlin = try answer("What is the capital of Germany?", bf16: true)
        XCTAssertTrue(berlin.lowercased().contains("berlin"), berlin)
        let sky = try answer("What color is the sky on a clear day?", bf16: true)
        XCTAssertTrue(sky.lowercased().contains("blue"), sky)
        let perplexity = try perplexityOfParagraph(language)
        print("SmolLM2 perplexity with BF16 weights \(perplexity)")
        XCTAssertEqual(perplexity, 8.651855, accuracy: 8.651855 * 0.02)
    }

    private func perplexityOfParagraph(_ language: LanguageModel) throws -> Double {
        let paragraph = """
        The city of Berlin is the capital of Germany and its largest city. It lies on the banks of the \
        rivers Spree and Havel in the north-east of the country. Berlin has a long history as a centre of \
        science, culture and politics, and today it is known for its museums, its parks and its music.
        """
        let ids = language.tokenizer.encode(paragraph)
        let session = try DecoderSession(model: language.model, context: 256)
        let logits = try session.logitsOfEveryRow(tokens: ids)
        var nll = 0.0
        for r in 0..<(ids.count - 1) {
            let row = logits.row(r)
            let top = Double(row.max() ?? 0)
            let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - top) }) + top
            nll += logSum - Double(row[ids[r + 1]])
        }
        let perplexity = exp(nll / Double(ids.count - 1))
        print("SmolLM2 perplexity \(perplexity) over \(ids.count) tokens")
        return perplexity
    }
}
