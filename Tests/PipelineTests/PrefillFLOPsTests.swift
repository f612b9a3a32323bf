import XCTest
import Pipeline
import VLM

/// `DecoderShape.prefillFLOPs` (the saving `stats` reports) against a count by hand.
final class PrefillFLOPsTests: XCTestCase {
    /// SmolLM2-135M's shape: d = 576, 9 query heads and 3 KV heads of 64, MLP 1536, 30 layers,
    /// vocabulary 49 152. Per token and layer: q, o 576·576 + k, v 576·192 = 884 736 MACs; gate, up,
    /// down 3·576·1536 = 2 654 208 MACs → 7 077 888 FLOPs. Causal attention: (QKᵀ + AV) 2·576·i MACs
    /// for query i → 1152·n(n+1) FLOPs per layer. Logits of the last token: 2·576·49 152 = 56 623 104.
    /// For n = 1000: 30 · (7 077 888 000 + 1 153 152 000) + 56 623 104 = 246 987 823 104.
    func testSmolLM2ShapeAgainstAHandCount() {
        let shape = DecoderShape(hiddenSize: 576, intermediateSize: 1536, layers: 30, heads: 9, kvHeads: 3, headDimension: 64,
                                 vocabularySize: 49_152, maxPositions: 8192, rmsNormEps: 1e-5)
        XCTAssertEqual(shape.prefillFLOPs(tokens: 1000), 246_987_823_104)
        XCTAssertEqual(shape.prefillFLOPs(tokens: 1), 30 * (7_077_888 + 1152 * 2) + 56_623_104)
        XCTAssertEqual(shape.prefillFLOPs(tokens: 0), 0)
    }
}
