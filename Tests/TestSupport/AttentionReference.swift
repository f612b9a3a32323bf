import Foundation

/// Attention in Double, the tests' one reference: per head, softmax(q·kᵀ/√d)·v, query head h reading
/// kv head h / (heads / kvHeads); query i sees the first min(keys, visible + i) keys (visible = keys:
/// full attention; offset + 1: causal after `offset` cached keys). Query rows are heads · d wide, the
/// output likewise. Key and value j of kv head g start at j · keyRowStride + g · keyHeadStride: by
/// default rows of kvHeads · d (a [keys, kvHeads · d] matrix); a cache laid out [kvHeads][capacity][d]
/// passes d and capacity · d. Scores: each key's probability, averaged over heads and queries.
public func referenceAttention(query: [Float], key: [Float], value: [Float], queries: Int, keys: Int, heads: Int,
                               kvHeads: Int, headDimension d: Int, visible: Int, keyRowStride: Int? = nil,
                               keyHeadStride: Int? = nil) -> (output: [Double], scores: [Double]) {
    let rowStride = keyRowStride ?? kvHeads * d, headStride = keyHeadStride ?? d
    var output = [Double](repeating: 0, count: queries * heads * d), scores = [Double](repeating: 0, count: keys)
    for h in 0..<heads {
        let g = h / (heads / kvHeads)
        for i in 0..<queries {
            let seen = min(keys, visible + i)
            let q = i * heads * d + h * d
            let logits = (0..<seen).map { j in
                (0..<d).reduce(0.0) { $0 + Double(query[q + $1]) * Double(key[j * rowStride + g * headStride + $1]) }
                    / Double(d).squareRoot()
            }
            let m = logits.max() ?? 0
            let e = logits.map { Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            for j in 0..<seen {
                let p = e[j] / total
                scores[j] += p / Double(heads * queries)
                for t in 0..<d { output[q + t] += p * Double(value[j * rowStride + g * headStride + t]) }
            }
        }
    }
    return (output, scores)
}
