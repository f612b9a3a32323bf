/// HiPrune++: HiPrune plus the tokens most similar to the question.
///
/// Budget: the prompt tokens come **out of** N', not on top of it, so HiPrune++ keeps exactly
/// as many tokens as HiPrune and the two compare at equal cost. Order of choice: anchors,
/// buffers, then `promptCount` prompt tokens (cosine similarity between each still-open token's
/// feature and the mean prompt embedding), then registers fill what is left. If the object set
/// already fills the budget, no prompt token is added.
///
/// With the default `beta = 0.1` and the `ofBudget` reading, budgets up to 25 tokens get no prompt
/// token (round(25 · 0.1 / 5) = round(0.5) = 0), so on SmolVLM2's 21-of-64 frames HiPrune++ equals
/// HiPrune unless `beta` is raised or `ofTokens` is chosen.
public struct HiPrunePlusPlus: Sendable, Hashable {
    /// Which count the paper's `beta` multiplies; the paper is ambiguous.
    public enum PromptCount: String, Sendable, Hashable, CaseIterable {
        /// `round(beta · N' / 5)`, like the anchor count (default).
        case ofBudget
        /// `round(beta · N)`, N the frame's token count.
        case ofTokens
    }

    public let hiPrune: HiPrune
    public let beta: Double
    public let promptCount: PromptCount

    public init(hiPrune: HiPrune, beta: Double = 0.1, promptCount: PromptCount = .ofBudget) throws(PruneError) {
        guard beta.isFinite, beta >= 0 else {
            throw .invalidParameter(name: "beta", value: beta, expected: "a finite value >= 0")
        }
        self.hiPrune = hiPrune
        self.beta = beta
        self.promptCount = promptCount
    }

    /// Prompt tokens wanted for a budget of `keep` of `tokenCount` tokens (before the budget caps it).
    public func promptTokenCount(budget keep: Int, tokenCount: Int) -> Int {
        switch promptCount {
        case .ofBudget: return roundHalfEven(Double(keep) * beta / 5)
        case .ofTokens: return roundHalfEven(Double(tokenCount) * beta)
        }
    }

    /// - Parameters:
    ///   - features: the tokens' embeddings in the LLM's input space (after the connector),
    ///     row-major `[N, width]`.
    ///   - promptEmbedding: mean of the prompt's text embeddings, `width` values.
    public func select(objectScores: [Float], deepScores: [Float], features: [Float], width: Int,
                       promptEmbedding: [Float], grid: TokenGrid, budget: Budget,
                       candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        try Validate.grid(grid)
        let n = grid.count
        guard width >= 1 else { throw .invalidParameter(name: "feature width", value: Double(width), expected: ">= 1") }
        try Validate.values(features, field: "token features", count: n * width)
        try Validate.values(promptEmbedding, field: "prompt embedding", count: width)
        return try hiPrune.selectWithPrompt(
            objectScores: objectScores, deepScores: deepScores, grid: grid, budget: budget, candidates: candidates,
            prompt: ({ keep in promptTokenCount(budget: keep, tokenCount: n) },
                     { open in cosineToEach(features, width: width, of: promptEmbedding, rows: open) }))
    }
}

/// Cosine similarity with `vector` of the given rows of `matrix` ([count, width]); other entries 0.
func cosineToEach(_ matrix: [Float], width: Int, of vector: [Float], rows: [Int]) -> [Float] {
    var out = [Float](repeating: 0, count: matrix.count / width)
    matrix.withUnsafeBufferPointer { m in
        vector.withUnsafeBufferPointer { v in
            for row in rows { out[row] = cosine(m, row, v, 0, width: width) }
        }
    }
    return out
}

/// Cosine of row `a` of `lhs` with row `b` of `rhs`, both `width` wide; 0 where either is zero.
/// Eight lanes at a time: a scalar float reduction cannot be vectorised by the compiler.
@inline(__always)
func cosine(_ lhs: UnsafeBufferPointer<Float>, _ a: Int, _ rhs: UnsafeBufferPointer<Float>, _ b: Int, width: Int) -> Float {
    guard let l = lhs.baseAddress.map({ $0 + a * width }), let r = rhs.baseAddress.map({ $0 + b * width }) else { return 0 }
    var dot8 = SIMD8<Float>(), nl8 = SIMD8<Float>(), nr8 = SIMD8<Float>()
    var d = 0
    while d + 8 <= width {
        let x = UnsafeRawPointer(l + d).loadUnaligned(as: SIMD8<Float>.self)
        let y = UnsafeRawPointer(r + d).loadUnaligned(as: SIMD8<Float>.self)
        dot8 += x * y
        nl8 += x * x
        nr8 += y * y
        d += 8
    }
    var dot = dot8.sum(), nl = nl8.sum(), nr = nr8.sum()
    while d < width {
        let x = l[d], y = r[d]
        dot += x * y
        nl += x * x
        nr += y * y
        d += 1
    }
    let denominator = (nl * nr).squareRoot()
    return denominator > 0 ? dot / denominator : 0
}
