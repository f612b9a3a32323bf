extension KVCache {
    /// Both arrays' storage inside one mutation of the cache. Reaching `keys` and `values` through
    /// two nested accesses of a stored `cache` property overlaps two modifications of it, which
    /// Swift's exclusivity rule forbids (and debug builds trap on).
    mutating func withMutableStorage<R>(_ body: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try keys.withUnsafeMutableBufferPointer { keys in
            try values.withUnsafeMutableBufferPointer { values in try body(keys, values) }
        }
    }
}
