// Choosing the next token from logits, in the order transformers applies its processors:
// repetition penalty (over prompt and generated tokens), temperature, top-k, top-p, then a draw
// from the softmax (`Sampler.distribution`, proved against transformers' processors by
// tests on tools/make_sampling_fixtures.py's fixture). Temperature 0 is greedy decoding (argmax, ties to the lower id). The random
// generator is seeded and deterministic (Prune's SplitMix64), so a seed reproduces a run exactly.
import Foundation
import Prune

public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Float = 0
    /// Keep the smallest set of tokens whose probability reaches top-p (1 = off).
    public var topP: Float = 1
    /// Keep the k most likely tokens (0 = off).
    public var topK: Int = 0
    /// > 1 discourages tokens already present (1 = off).
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topP: Float = 1, topK: Int = 0, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    public func validate() throws(VLMError) {
        guard temperature >= 0, temperature.isFinite else { throw .invalidArgument(name: "temperature", cause: "\(temperature) is not ≥ 0") }
        guard topP > 0, topP <= 1 else { throw .invalidArgument(name: "top-p", cause: "\(topP) is not in (0, 1]") }
        guard topK >= 0 else { throw .invalidArgument(name: "top-k", cause: "\(topK) is negative") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw .invalidArgument(name: "repetition penalty", cause: "\(repetitionPenalty) is not > 0")
        }
    }
}

/// The distribution the next token is drawn from: the candidates left after the processors, in
/// draw order (descending processed logit, ties to the lower id), with their unnormalised weights
/// `exp(logit − max)`. Every other token has probability 0.
public struct TokenDistribution: Sendable, Equatable {
    public var tokens: [Int]
    public var weights: [Double]
    public var total: Double { weights.reduce(0, +) }

    public init(tokens: [Int], weights: [Double]) {
        self.tokens = tokens
        self.weights = weights
    }

    /// The probability of each of `vocabulary` tokens.
    public func probabilities(vocabulary: Int) -> [Double] {
        var out = [Double](repeating: 0, count: vocabulary)
        let sum = total
        for (token, weight) in zip(tokens, weights) where token < vocabulary { out[token] = weight / sum }
        return out
    }
}

public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: SplitMix64
    private var order: [Int32] = []       // reused candidate indices
    private var seen: [Bool] = []         // tokens present so far (repetition penalty)

    public init(parameters: SamplingParameters) throws(VLMError) {
        try parameters.validate()
        self.parameters = parameters
        random = SplitMix64(seed: parameters.seed)
    }

    /// Marks tokens as present (prompt and generated) for the repetition penalty.
    public mutating func observe(_ tokens: [Int], vocabulary: Int) {
        guard parameters.repetitionPenalty != 1 else { return }
        if seen.count != vocabulary { seen = [Bool](repeating: false, count: vocabulary) }
        for t in tokens where t >= 0 && t < vocabulary { seen[t] = true }
    }

    /// Marks one generated token as present.
    public mutating func observe(_ token: Int) {
        if token >= 0, token < seen.count { seen[token] = true }
    }

    /// The next token, drawn from `distribution(&logits)`; `logits` is modified (penalty, temperature).
    public mutating func next(_ logits: inout [Float]) -> Int {
        let d = distribution(&logits)
        guard d.tokens.count > 1 else { return d.tokens.first ?? 0 }
        var u = Double(random.next() >> 11) * 0x1.0p-53 * d.total  // uniform in [0, total)
        for (token, weight) in zip(d.tokens, d.weights) {
            u -= weight
            if u < 0 { return token }
        }
        return d.tokens[d.tokens.count - 1]
    }

    /// What `next` draws from, as transformers' `generate(do_sample=True)` builds it
    /// (GenerationMixin._get_logits_processor, checked by tools/make_sampling_fixtures.py):
    /// RepetitionPenaltyLogitsProcessor (over every token observed), TemperatureLogitsWarper,
    /// TopKLogitsWarper (every token equal to the k-th largest logit stays: ties at the k-th
    /// place keep more than k), TopPLogitsWarper (a token stays while the mass of the tokens
    /// before it is below top-p; the first always stays), then the softmax. Temperature 0 is
    /// greedy: all the mass on the argmax. `logits` is modified (penalty, temperature).
    public mutating func distribution(_ logits: inout [Float]) -> TokenDistribution {
        let n = logits.count
        guard n > 0 else { return TokenDistribution(tokens: [0], weights: [1]) }
        let p = parameters
        if p.repetitionPenalty != 1, seen.count == n {
            for i in 0..<n where seen[i] { logits[i] = logits[i] < 0 ? logits[i] * p.repetitionPenalty : logits[i] / p.repetitionPenalty }
        }
        if p.temperature == 0 { return TokenDistribution(tokens: [argmax(logits)], weights: [1]) }
        for i in 0..<n { logits[i] /= p.temperature }
        // Candidates by descending logit (ties: lower id first).
        if order.count != n { order = (0..<Int32(n)).map { $0 } } else { for i in 0..<n { order[i] = Int32(i) } }
        let scaled = logits
        let byLogit: (Int32, Int32) -> Bool = { a, b in
            let x = scaled[Int(a)], y = scaled[Int(b)]
            return x > y || (x == y && a < b)
        }
        var tokens: [Int]
        if p.topK > 0, p.topK < n {
            order.withUnsafeMutableBufferPointer { buffer in partialSort(buffer, p.topK, by: byLogit) }
            tokens = order[0..<p.topK].map { Int($0) }
            // The tokens tied with the k-th that did not fit: their ids are above the tied ones
            // the partial sort kept (ties go to the lower id), so they follow in id order.
            let kth = scaled[tokens[p.topK - 1]]
            var tiedKept = tokens.reduce(0) { $0 + (scaled[$1] == kth ? 1 : 0) }
            for i in 0..<n where scaled[i] == kth {
                if tiedKept > 0 { tiedKept -= 1 } else { tokens.append(i) }
            }
        } else {
            order.sort(by: byLogit)
            tokens = order.map { Int($0) }
        }
        // Softmax over the candidates, then the top-p cut.
        let top = Double(logits[tokens[0]])
        var weights = tokens.map { exp(Double(logits[$0]) - top) }
        if p.topP < 1 {
            let total = weights.reduce(0, +)
            var before = 0.0
            var count = 0
            while count < weights.count, count == 0 || before < Double(p.topP) {
                before += weights[count] / total
                count += 1
            }
            tokens.removeSubrange(count...)
            weights.removeSubrange(count...)
        }
        return TokenDistribution(tokens: tokens, weights: weights)
    }
}

/// Index of the largest value; the lowest index among equals (as torch.argmax).
public func argmax(_ values: [Float]) -> Int {
    var best = 0
    var top = -Float.infinity
    for (i, v) in values.enumerated() where v > top {
        top = v
        best = i
    }
    return best
}

/// Moves the `k` first elements by `order` to the front, sorted.
private func partialSort(_ a: UnsafeMutableBufferPointer<Int32>, _ k: Int, by order: (Int32, Int32) -> Bool) {
    // Selection by a bounded insertion into the first k slots: O(n·k) worst case but k is small in practice.
    guard k > 0 else { return }
    var front = Array(a[0..<k]).sorted(by: order)
    for i in k..<a.count {
        let x = a[i]
        guard order(x, front[k - 1]) else { continue }
        var j = k - 1
        while j > 0, order(x, front[j - 1]) { front[j] = front[j - 1]; j -= 1 }
        front[j] = x
    }
    for i in 0..<k { a[i] = front[i] }
}
