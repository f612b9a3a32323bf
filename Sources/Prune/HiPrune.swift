/// HiPrune (arXiv 2508.00553), as docs/HIPRUNE.md states it: anchors by the object
/// layer's score, their grid neighbours as buffers, registers by the deep layer's score.
///
/// Exactly `min(N', candidates)` tokens are kept, every anchor is kept, ties go to the lower
/// index, and the result is in raster order.
public struct HiPrune: Sendable, Hashable {
    /// How anchors are counted and where buffers are found.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// `n_a = max(1, round(alpha·N'/5))`; buffers are the true up/down/left/right grid
        /// neighbours, nothing outside the grid.
        case grid
        /// The published code, kept only to prove parity: `n_a = round(alpha·N'/5)` (0 on small
        /// budgets) and buffers at flat index ±1, ±cols clamped to [0, N-1], which wraps rows and
        /// pads with tokens 0 and N-1. An object set over budget (the published code has no rule
        /// for it) is cut as in `grid` mode.
        case reference
    }

    /// Share of the budget that goes to anchors, over 5 (each anchor brings up to 4 buffers).
    public let alpha: Double
    public let mode: Mode

    public init(alpha: Double = 0.1, mode: Mode = .grid) throws(PruneError) {
        guard alpha.isFinite, alpha >= 0 else {
            throw .invalidParameter(name: "alpha", value: alpha, expected: "a finite value >= 0")
        }
        self.alpha = alpha
        self.mode = mode
    }

    /// Number of anchors for a budget of `keep` tokens.
    public func anchorCount(budget keep: Int) -> Int {
        guard keep > 0 else { return 0 }
        let published = roundHalfEven(Double(keep) * alpha / 5)
        return min(keep, mode == .grid ? max(1, published) : published)
    }

    /// Keeps `budget` tokens of a frame.
    /// - Parameters:
    ///   - objectScores: `s_obj`, one score per token in raster order.
    ///   - deepScores: `s_deep`, same layout.
    ///   - candidates: tokens allowed to be kept (nil: all), e.g. the survivors of
    ///     `TemporalDeduplicator`; the kept count is then `min(N', survivors)`, and that count
    ///     is the N' of the anchor formula. Anchors, buffers and registers are all candidates.
    public func select(objectScores: [Float], deepScores: [Float], grid: TokenGrid, budget: Budget,
                       candidates: [Bool]? = nil) throws(PruneError) -> Selection {
        try selectWithPrompt(objectScores: objectScores, deepScores: deepScores, grid: grid, budget: budget,
                             candidates: candidates, prompt: nil)
    }

    /// The shared body of HiPrune and HiPrune++. `prompt` gives the number of prompt tokens for
    /// a kept count, and their similarity to the prompt for the open tokens it is given (computed
    /// only when some prompt token is wanted: the costly part of HiPrune++).
    func selectWithPrompt(objectScores: [Float], deepScores: [Float], grid: TokenGrid, budget: Budget,
                          candidates: [Bool]?, prompt: (count: (Int) -> Int, similarity: ([Int]) -> [Float])?)
        throws(PruneError) -> Selection {
        try Validate.grid(grid)
        let n = grid.count
        try Validate.values(objectScores, field: "object-layer scores", count: n)
        try Validate.values(deepScores, field: "deep-layer scores", count: n)
        try Validate.mask(candidates, count: n)
        let budgetCount = try budget.resolve(tokenCount: n)

        var roleByToken = [TokenRole?](repeating: nil, count: n)
        var open: [Int] = candidates.map { mask in (0..<n).filter { mask[$0] } } ?? Array(0..<n)
        let keep = min(budgetCount, open.count)
        guard keep > 0 else { return Selection(grid: grid, roleByToken: roleByToken) }

        // 1. Anchors.
        let anchorCount = anchorCount(budget: keep)
        selectTop(anchorCount, of: &open, by: objectScores)
        for index in open.prefix(anchorCount) { roleByToken[index] = .anchor }
        var chosen = anchorCount

        // 2. Buffers: neighbours of anchors that are candidates and not anchors themselves.
        var buffers: [Int] = []
        func offer(_ index: Int) {
            if roleByToken[index] == nil && (candidates?[index] ?? true) {
                roleByToken[index] = .buffer
                buffers.append(index)
            }
        }
        for anchor in open.prefix(anchorCount) {
            switch mode {
            case .grid:
                let (row, col) = grid.position(of: anchor)
                if row > 0 { offer(anchor - grid.cols) }
                if row + 1 < grid.rows { offer(anchor + grid.cols) }
                if col > 0 { offer(anchor - 1) }
                if col + 1 < grid.cols { offer(anchor + 1) }
            case .reference:
                for delta in [-1, 1, -grid.cols, grid.cols] { offer(min(max(anchor + delta, 0), n - 1)) }
            }
        }
        // Object set over budget: anchors stay, the buffers with the best object score follow.
        let bufferRoom = keep - chosen
        if buffers.count > bufferRoom {
            selectTop(bufferRoom, of: &buffers, by: objectScores)
            for index in buffers[bufferRoom...] { roleByToken[index] = nil }
            buffers.removeSubrange(bufferRoom...)
        }
        chosen += buffers.count

        // 3. Prompt tokens (HiPrune++), then 4. registers, each among the tokens still open.
        if chosen < keep {
            open.removeAll { roleByToken[$0] != nil }
            if let prompt {
                let take = min(keep - chosen, prompt.count(keep))
                if take > 0 { selectTop(take, of: &open, by: prompt.similarity(open)) }
                for index in open.prefix(take) { roleByToken[index] = .prompt }
                open.removeFirst(take)
                chosen += take
            }
            let take = keep - chosen
            selectTop(take, of: &open, by: deepScores)
            for index in open.prefix(take) { roleByToken[index] = .register }
        }
        return Selection(grid: grid, roleByToken: roleByToken)
    }
}
