// One-vector products for decode steps. A decode step is memory-bound: every weight is read once,
// and one core cannot pull the bytes fast enough. So the rows are split between the calling thread
// and one persistent worker that spins between jobs (a step issues ~120 products a few µs apart,
// too short for waking a sleeping thread or for a dispatch queue) and sleeps after ~1 ms idle.
// Rows are claimed in chunks, so a thread that loses its core mid-product leaves its share to
// the other. Four rows at a time share each load of the input.
import Foundation
import Synchronization

/// `y (+)= W · x` for one vector: `weight` is [rows, cols] row-major, `x` has `cols` values and
/// `y` `rows`. With `accumulate`, the product is added onto `y`.
public func matvec(_ weight: UnsafePointer<Float>, rows: Int, cols: Int, _ x: UnsafePointer<Float>,
                   into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
    guard rows > 0, cols > 0 else { return }
    let product = MatvecJob(weight: weight, rows: rows, cols: cols, x: x, y: y, accumulate: accumulate)
    if rows * cols < 1 << 16 || !MatvecTeam.shared.run(product) {
        product.rowRange(0, rows)
    }
}

struct MatvecJob: @unchecked Sendable {
    let weight: UnsafePointer<Float>
    let rows: Int
    let cols: Int
    let x: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
    let accumulate: Bool

    static let empty = MatvecJob(weight: UnsafePointer(bitPattern: 16)!, rows: 0, cols: 0,
                                 x: UnsafePointer(bitPattern: 16)!, y: UnsafeMutablePointer(bitPattern: 16)!, accumulate: false)

    /// Rows `lo ..< hi`.
    func rowRange(_ lo: Int, _ hi: Int) {
        let k = cols
        var r = lo
        while r + 4 <= hi {
            let w0 = weight + r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var j = 0
            while j + 8 <= k {
                let v = load(x + j)
                a0 += load(w0 + j) * v
                a1 += load(w1 + j) * v
                a2 += load(w2 + j) * v
                a3 += load(w3 + j) * v
                j += 8
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while j < k {
                let v = x[j]
                s0 += w0[j] * v
                s1 += w1[j] * v
                s2 += w2[j] * v
                s3 += w3[j] * v
                j += 1
            }
            if accumulate {
                y[r] += s0; y[r + 1] += s1; y[r + 2] += s2; y[r + 3] += s3
            } else {
                y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3
            }
            r += 4
        }
        while r < hi {
            let w0 = weight + r * k
            var a0 = SIMD8<Float>()
            var j = 0
            while j + 8 <= k {
                a0 += load(w0 + j) * load(x + j)
                j += 8
            }
            var s0 = a0.sum()
            while j < k {
                s0 += w0[j] * x[j]
                j += 1
            }
            y[r] = accumulate ? y[r] + s0 : s0
            r += 1
        }
    }
}

@inline(__always)
private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

/// The calling thread plus one worker. A job is published by bumping `generation`; the worker
/// acknowledges it through `finished` once it can claim no more chunks.
final class MatvecTeam: @unchecked Sendable {
    static let shared = MatvecTeam()

    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let nextChunk = Atomic<Int>(0)
    private let sleeping = Atomic<Bool>(false)
    /// Held by the caller for a whole job; a second caller meanwhile computes alone.
    private let busy = Atomic<Bool>(false)
    private let wake = NSCondition()
    /// Written by the caller before `generation` moves, read by the worker after it sees the move.
    private var job = MatvecJob.empty
    private var chunkRows = 0
    private var chunks = 0

    private init() {
        let thread = Thread { [self] in serve() }
        thread.name = "matvec"
        thread.start()
    }

    /// Runs `product` on both threads; false when another caller holds the team.
    func run(_ product: MatvecJob) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        job = product
        // ~16 chunks, each a multiple of 4 rows.
        chunkRows = max(16, (product.rows / 16 + 3) & ~3)
        chunks = (product.rows + chunkRows - 1) / chunkRows
        nextChunk.store(0, ordering: .sequentiallyConsistent)
        let g = generation.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
        if sleeping.load(ordering: .sequentiallyConsistent) {
            wake.lock()
            wake.signal()
            wake.unlock()
        }
        work(product)
        while finished.load(ordering: .acquiring) != g {}
        return true
    }

    private func work(_ product: MatvecJob) {
        let size = chunkRows, count = chunks
        while true {
            let c = nextChunk.wrappingAdd(1, ordering: .relaxed).oldValue
            guard c < count else { return }
            product.rowRange(c * size, min(product.rows, (c + 1) * size))
        }
    }

    private func serve() {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .sequentiallyConsistent) == seen {
                spins += 1
                if spins > 200_000 {
                    wake.lock()
                    sleeping.store(true, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    sleeping.store(false, ordering: .sequentiallyConsistent)
                    wake.unlock()
                    spins = 0
                }
            }
            seen = generation.load(ordering: .acquiring)
            work(job)
            finished.store(seen, ordering: .releasing)
        }
    }
}
