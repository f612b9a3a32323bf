// Keys and values of every layer for the tokens seen so far, preallocated to a fixed capacity.
// Layout: [layers][kvHeads][capacity][headDimension], so that each head's keys are one contiguous
// [count, d] matrix for the attention products. A value type: copying a cache that holds a shared
// prefix (a system prompt, the frames of a video) and continuing from the copy leaves the original
// intact (copy on write).
import Foundation
import Tensor

public struct KVCache: Sendable {
    public let layers: Int
    public let kvHeads: Int
    public let headDimension: Int
    public let capacity: Int
    /// Tokens held (the next token goes to slot `count`).
    public internal(set) var count = 0
    /// The rotary position of the next token: `count` for plain text, less after an M-RoPE video
    /// (whose rows share positions).
    public internal(set) var nextPosition = 0
    var keys: [Float]
    var values: [Float]

    public init(shape c: DecoderShape, capacity: Int) throws(VLMError) {
        guard capacity > 0, capacity <= c.maxPositions else {
            throw .invalidArgument(name: "context", cause: "\(capacity) tokens; the model supports 1 ... \(c.maxPositions)")
        }
        // Keys and values together must fit in memory; checked before the allocation.
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        guard let count = SizeLimits.product([c.layers, c.kvHeads, capacity, c.headDimension]), count <= physical / 8 else {
            throw .invalidArgument(name: "context", cause: "a KV cache of \(capacity) tokens × \(c.layers) layers × \(c.kvHeads) heads × \(c.headDimension) does not fit in \(physical >> 20) MB of memory")
        }
        layers = c.layers
        kvHeads = c.kvHeads
        headDimension = c.headDimension
        self.capacity = capacity
        keys = [Float](repeating: 0, count: layers * kvHeads * capacity * headDimension)
        values = keys
    }

    /// Bytes held by keys and values (the whole capacity: the arrays are written when made).
    public var byteCount: Int { (keys.count + values.count) * MemoryLayout<Float>.stride }

    /// Forgets everything after the first `count` tokens (to reuse a common prefix of plain text,
    /// whose positions are its slots).
    public mutating func truncate(to count: Int) {
        self.count = max(0, min(count, self.count))
        nextPosition = self.count
    }
}
