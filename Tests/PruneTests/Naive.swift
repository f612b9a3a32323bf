import TestSupport
@testable import Prune

/// Straightforward restatements of the rules, for checking the fast code against.
enum Naive {
    /// Indices ranked by score descending, ties → lower index; full sort, no cleverness.
    static func ranked(_ indices: [Int], by scores: [Float]) -> [Int] {
        indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
    }

    static func gridNeighbours(of index: Int, in grid: TokenGrid) -> [Int] {
        let (r, c) = grid.position(of: index)
        return [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
            .filter { $0.0 >= 0 && $0.0 < grid.rows && $0.1 >= 0 && $0.1 < grid.cols }
            .map { grid.index(row: $0.0, col: $0.1) }
    }

    static func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for (x, y) in zipSameLength(a, b) { dot += x * y; na += x * x; nb += y * y }
        return na * nb > 0 ? dot / (na * nb).squareRoot() : 0
    }
}

/// Deterministic test data.
struct TestRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + generator.next(below: range.upperBound - range.lowerBound + 1)
    }

    mutating func unit() -> Float { Float(generator.next() >> 40) / Float(1 << 24) }

    mutating func chance(_ p: Double) -> Bool { Double(generator.next() >> 11) / Double(1 << 53) < p }

    /// Small integers force ties half the time; otherwise floats in [0, 1).
    mutating func scores(_ n: Int, tied: Bool) -> [Float] {
        (0..<n).map { _ in tied ? Float(int(0...3)) : unit() }
    }

    /// Grids from 1×1 to 64×64, with 1×N and N×1 often.
    mutating func grid(maxSide: Int = 64) -> TokenGrid {
        switch int(0...5) {
        case 0: return TokenGrid(rows: 1, cols: int(1...maxSide))
        case 1: return TokenGrid(rows: int(1...maxSide), cols: 1)
        case 2: return TokenGrid(rows: int(1...maxSide), cols: int(1...maxSide))
        default: return TokenGrid(rows: int(1...min(maxSide, 16)), cols: int(1...min(maxSide, 16)))
        }
    }
}
