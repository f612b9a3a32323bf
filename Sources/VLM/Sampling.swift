// Choosing the next token from logits, in the order transformers applies its processors:
// repetition penalty (over prompt and generated tokens), temperature, top-k, top-p, then a draw
// from the softmax. Temperature 0 is greedy decoding (argmax, ties to the lower id). The random
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

    /// The next token; `logits` is modified (penalty, temperature).
    public mutating func next(_ logits: inout [Float]) -> Int {
        let n = logits.count
        guard n > 0 else { return 0 }
        let p = parameters
        if p.repetitionPenalty != 1, seen.count == n {
            for i in 0..<n where seen[i] { logits[i] = logits[i] > 0 ? logits[i] / p.repetitionPenalty : logits[i] * p.repetitionPenalty }
        }
        if p.temperature == 0 { return argmax(logits) }
        let inv = 1 / p.temperature
        for i in 0..<n { logits[i] *= inv }
        // Candidates by descending logit (ties: lower id first).
        if order.count != n { order = (0..<Int32(n)).map { $0 } } else { for i in 0..<n { order[i] = Int32(i) } }
        let keep = p.topK > 0 ? min(p.topK, n) : n
        let scaled = logits
        let byLogit: (Int32, Int32) -> Bool = { a, b in
            let x = scaled[Int(a)], y = scaled[Int(b)]
            return x > y || (x == y && a < b)
        }
        if keep < n {
            order.withUnsafeMutableBufferPointer { buffer in partialSort(buffer, keep, by: byLogit) }
        } else {
            order.sort(by: byLogit)
        }
        // Softmax over the kept candidates, then the top-p cut (keeping at least one).
        let top = logits[Int(order[0])]
        var weights = 0.0
        var count = keep
        var probabilities = [Double](repeating: 0, count: keep)
        for i in 0..<keep {
            let w = exp(Double(logits[Int(order[i])] - top))
            probabilities[i] = w
            weights += w
        }
        if p.topP < 1 {
            var cumulative = 0.0
            for i in 0..<keep {
                cumulative += probabilities[i] / weights
                if cumulative >= Double(p.topP) { count = i + 1; break }
            }
            weights = probabilities[0..<count].reduce(0, +)
        }
        var u = Double(random.next() >> 11) * 0x1.0p-53 * weights  // uniform in [0, weights)
        for i in 0..<count {
            u -= probabilities[i]
            if u < 0 { return Int(order[i]) }
        }
        return Int(order[count - 1])
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
