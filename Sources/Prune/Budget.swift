/// How many tokens of a frame reach the language model.
public enum Budget: Sendable, Hashable, CustomStringConvertible {
    /// Exactly this many tokens (0 ... N).
    case count(Int)
    /// A share `r` of the frame's N tokens, `r` in (0, 1]: N' = round(r · N), half to even
    /// as Python's `round`, so budgets match the published configurations.
    case ratio(Double)

    /// N' for a frame of `tokenCount` tokens.
    public func resolve(tokenCount: Int) throws(PruneError) -> Int {
        switch self {
        case .count(let n):
            guard n >= 0 else { throw .negativeBudget(n) }
            guard n <= tokenCount else { throw .budgetExceedsTokens(budget: n, tokens: tokenCount) }
            return n
        case .ratio(let r):
            guard r.isFinite, r > 0, r <= 1 else { throw .ratioOutOfRange(r) }
            return roundHalfEven(r * Double(tokenCount))
        }
    }

    public var description: String {
        switch self {
        case .count(let n): return "\(n) tokens"
        case .ratio(let r): return "ratio \(r)"
        }
    }
}

/// Python's `round` on a non-negative finite value (callers validate), clamped to Int range.
@inlinable func roundHalfEven(_ x: Double) -> Int {
    let r = x.rounded(.toNearestOrEven)
    return r >= Double(Int.max) ? Int.max : Int(r)
}
