// One-vector products for decode steps. A decode step is memory-bound: every weight is read once,
// and one core cannot pull the bytes fast enough. So the rows are split between the calling thread
// and one persistent worker that spins between jobs (a step issues ~120 products a few µs apart,
// too short for waking a sleeping thread or for a dispatch queue) and sleeps after ~1 ms idle.
// Rows are claimed in chunks, so when the worker is off its core (a loaded machine) the caller
// does its share instead of waiting. Four rows at a time share each load of the input.
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

/// The calling thread plus one worker. A job is announced by bumping `generation`; both threads
/// then claim chunks from `claim` (job tag in the high bits, next chunk in the low 32), and the
/// caller returns once `completed` counts every chunk. The caller never waits for a worker that
/// has not started (on a loaded machine it may be off its core): unclaimed chunks are its own.
/// The job's fields are atomics too, so a worker reading them late only fails its claim.
final class MatvecTeam: Sendable {
    static let shared = MatvecTeam()

    private let generation = Atomic<Int>(0)
    private let claim = Atomic<Int>(closed)
    private let completed = Atomic<Int>(0)
    private let sleeping = Atomic<Bool>(false)
    /// Held by the caller for a whole job; a second caller meanwhile computes alone.
    private let busy = Atomic<Bool>(false)
    private let wake = NSCondition()
    private let weight = Atomic<Int>(0), x = Atomic<Int>(0), y = Atomic<Int>(0)
    private let rows = Atomic<Int>(0), cols = Atomic<Int>(0), accumulate = Atomic<Bool>(false)
    private let chunkRows = Atomic<Int>(1), chunks = Atomic<Int>(0)
    private static let closed = -1

    private init() {
        let thread = Thread { [self] in serve() }
        thread.name = "matvec"
        thread.start()
    }

    /// Runs `product` on both threads; false when another caller holds the team.
    func run(_ product: MatvecJob) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        // ~16 chunks of a multiple of 4 rows.
        let size = max(16, (product.rows / 16 + 3) & ~3), count = (product.rows + size - 1) / size
        weight.store(Int(bitPattern: product.weight), ordering: .relaxed)
        x.store(Int(bitPattern: product.x), ordering: .relaxed)
        y.store(Int(bitPattern: product.y), ordering: .relaxed)
        rows.store(product.rows, ordering: .relaxed)
        cols.store(product.cols, ordering: .relaxed)
        accumulate.store(product.accumulate, ordering: .relaxed)
        chunkRows.store(size, ordering: .relaxed)
        chunks.store(count, ordering: .relaxed)
        completed.store(0, ordering: .relaxed)
        let g = (generation.load(ordering: .relaxed) + 1) & 0x7FFF_FFFF
        claim.store(g << 32, ordering: .sequentiallyConsistent)
        generation.store(g, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) {
            wake.lock()
            wake.signal()
            wake.unlock()
        }
        work(product, tag: g, size: size, count: count)
        var spins = 0
        while completed.load(ordering: .acquiring) != count {
            spins += 1
            if spins & 1023 == 0 { sched_yield() }
        }
        claim.store(Self.closed, ordering: .sequentiallyConsistent)
        return true
    }

    /// Claims and computes chunks of job `tag` until none is left.
    private func work(_ product: MatvecJob, tag: Int, size: Int, count: Int) {
        var current = claim.load(ordering: .sequentiallyConsistent)
        while current >> 32 == tag, current & 0xFFFF_FFFF < count {
            let (exchanged, found) = claim.compareExchange(expected: current, desired: current + 1, ordering: .sequentiallyConsistent)
            if !exchanged {
                current = found
                continue
            }
            let c = current & 0xFFFF_FFFF
            product.rowRange(c * size, min(product.rows, (c + 1) * size))
            completed.wrappingAdd(1, ordering: .releasing)
            current += 1
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
            seen = generation.load(ordering: .sequentiallyConsistent)
            // Fields of job `seen`, or of a later one if the caller moved on: then the claim fails.
            guard let w = UnsafePointer<Float>(bitPattern: weight.load(ordering: .relaxed)),
                  let input = UnsafePointer<Float>(bitPattern: x.load(ordering: .relaxed)),
                  let output = UnsafeMutablePointer<Float>(bitPattern: y.load(ordering: .relaxed)) else { continue }
            let product = MatvecJob(weight: w, rows: rows.load(ordering: .relaxed), cols: cols.load(ordering: .relaxed),
                                    x: input, y: output, accumulate: accumulate.load(ordering: .relaxed))
            work(product, tag: seen, size: max(1, chunkRows.load(ordering: .relaxed)), count: chunks.load(ordering: .relaxed))
        }
    }
}
