/// Top-k by score with ties broken by the lower index: the one ranking rule of every policy.
///
/// `candidates` is reordered in place so that its first `k` entries are the k best (in no
/// particular order). Quickselect with a median-of-three pivot: linear on average, and the
/// (score, index) order is total, so the chosen set never depends on the input order.
func selectTop(_ k: Int, of candidates: inout [Int], by scores: [Float]) {
    let n = candidates.count
    guard k > 0, k < n else { return }
    scores.withUnsafeBufferPointer { s in
        candidates.withUnsafeMutableBufferPointer { c in
            @inline(__always) func better(_ a: Int, _ b: Int) -> Bool {
                let sa = s[a], sb = s[b]
                return sa > sb || (sa == sb && a < b)
            }
            var lo = 0, hi = n - 1
            while lo < hi {
                // Median of three into c[hi] as the pivot.
                let mid = lo + (hi - lo) / 2
                if better(c[mid], c[lo]) { c.swapAt(mid, lo) }
                if better(c[hi], c[lo]) { c.swapAt(hi, lo) }
                if better(c[mid], c[hi]) { c.swapAt(mid, hi) }
                let pivot = c[hi]
                var store = lo
                for i in lo..<hi where better(c[i], pivot) {
                    c.swapAt(i, store)
                    store += 1
                }
                c.swapAt(store, hi)
                // c[lo..<store] beat the pivot, c[store] is the pivot, the rest lose to it.
                if store == k - 1 || store == k { return }
                if store > k { hi = store - 1 } else { lo = store + 1 }
            }
        }
    }
}

/// The k best candidates, best first (score descending, then index ascending).
func rankedTop(_ k: Int, of candidates: [Int], by scores: [Float]) -> [Int] {
    var c = candidates
    let k = min(k, c.count)
    selectTop(k, of: &c, by: scores)
    var top = Array(c.prefix(k))
    top.sort { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    return top
}
