import Prune

/// The tests' generator is the project's own (one SplitMix64), seeded per test.
public typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// Uniform in [-1, 1), from 53 bits.
    public mutating func nextFloat() -> Float { Float(Double(next() >> 11) / Double(1 << 53)) * 2 - 1 }
}
