// Running the decoder: a session owns a KV cache and the working buffers of one sequence.
// `prefill` takes token ids or input embeddings (any number of rows, sgemm); `step` feeds one token
// (sgemv, attention as two small products per kv head) and allocates nothing once the buffers have
// their size. After either call `logits` holds the next-token logits of the last row.
import Tensor

public final class LlamaSession {
    public let model: LlamaModel
    public var cache: KVCache
    /// Next-token logits after the last processed row.
    public private(set) var logits: [Float]

    private var rowCapacity = 0
    private let hidden = Buffer(), normed = Buffer(), qkv = Buffer(), attended = Buffer(), gateUp = Buffer()
    private var scores: [Float] = []
    private var positionBuffer: [Int] = []

    /// A session with an empty cache of `context` tokens (default: the model's maximum, at most 4096).
    public init(model: LlamaModel, context: Int? = nil) throws(VLMError) {
        self.model = model
        let c = model.configuration
        cache = try KVCache(configuration: c, capacity: context ?? min(c.maxPositions, 4096))
        logits = [Float](repeating: 0, count: c.vocabularySize)
    }

    /// A session continuing from a cache (e.g. a copy of a shared prefix). A cache made for another
    /// model shape is reported by the first prefill or step.
    public init(model: LlamaModel, cache: KVCache) {
        self.model = model
        self.cache = cache
        logits = [Float](repeating: 0, count: model.configuration.vocabularySize)
    }

    /// Feeds `tokens` after what the cache holds.
    public func prefill(tokens: [Int]) throws(VLMError) {
        _ = try run(embeddings: model.embed(tokens), positions: nil, allLogits: false)
    }

    /// Feeds input embeddings ([rows, hidden]) after what the cache holds. `positions` are the
    /// RoPE positions of the rows (default: their cache slots).
    public func prefill(embeddings: Matrix, positions: [Int]? = nil) throws(VLMError) {
        _ = try run(embeddings: embeddings, positions: positions, allLogits: false)
    }

    /// Feeds `tokens` and returns the logits of every row, [tokens, vocab] (for tests and scoring).
    public func logitsOfEveryRow(tokens: [Int]) throws(VLMError) -> Matrix {
        try run(embeddings: model.embed(tokens), positions: nil, allLogits: true)
    }

    /// Feeds one token (the decode step).
    public func step(token: Int) throws(VLMError) {
        let c = model.configuration
        guard token >= 0, token < c.vocabularySize else { throw .tokenOutOfRange(id: token, vocabulary: c.vocabularySize) }
        try checkCacheShape()
        guard cache.count < cache.capacity else { throw .contextOverflow(tokens: cache.count + 1, context: cache.capacity) }
        reserve(rows: 1)
        model.embedding.storage.withUnsafeBufferPointer { e in
            hidden.pointer.update(from: e.baseAddress! + token * c.hiddenSize, count: c.hiddenSize)
        }
        if positionBuffer.isEmpty { positionBuffer = [0] }
        positionBuffer[0] = cache.count
        forward(rows: 1)
        computeLogits(rows: 1, all: false)
    }

    private func run(embeddings: Matrix, positions: [Int]?, allLogits: Bool) throws(VLMError) -> Matrix {
        let c = model.configuration
        let n = embeddings.rows
        guard embeddings.cols == c.hiddenSize else {
            throw .invalidArgument(name: "embeddings", cause: "width \(embeddings.cols), the model's hidden size is \(c.hiddenSize)")
        }
        guard n > 0 else { throw .invalidArgument(name: "prompt", cause: "empty") }
        try checkCacheShape()
        guard cache.count + n <= cache.capacity else {
            throw .contextOverflow(tokens: cache.count + n, context: cache.capacity)
        }
        let rope = positions ?? Array(cache.count..<(cache.count + n))
        guard rope.count == n, rope.allSatisfy({ $0 >= 0 && $0 < c.maxPositions }) else {
            throw .invalidArgument(name: "positions", cause: "need \(n) positions in 0 ..< \(c.maxPositions)")
        }
        reserve(rows: n)
        embeddings.storage.withUnsafeBufferPointer { hidden.pointer.update(from: $0.baseAddress!, count: n * c.hiddenSize) }
        positionBuffer = rope
        forward(rows: n)
        return computeLogits(rows: n, all: allLogits)
    }

    private func checkCacheShape() throws(VLMError) {
        let c = model.configuration
        guard cache.layers == c.layers, cache.kvHeads == c.kvHeads, cache.headDimension == c.headDimension,
              cache.capacity <= c.maxPositions else {
            throw .invalidArgument(name: "KV cache", cause: "\(cache.layers) layers × \(cache.kvHeads) kv heads × \(cache.headDimension) does not fit a model of \(c.layers) × \(c.kvHeads) × \(c.headDimension)")
        }
    }

    private func reserve(rows: Int) {
        guard rows > rowCapacity else { return }
        let c = model.configuration
        let qkvWidth = (c.heads + 2 * c.kvHeads) * c.headDimension
        hidden.resize(rows * c.hiddenSize)
        normed.resize(rows * c.hiddenSize)
        qkv.resize(rows * qkvWidth)
        attended.resize(rows * c.heads * c.headDimension)
        gateUp.resize(rows * 2 * c.intermediateSize)
        rowCapacity = rows
    }

    /// Runs every layer over `rows` rows in `hidden`, appending their keys and values to the cache.
    private func forward(rows n: Int) {
        let c = model.configuration
        let h = c.hiddenSize, d = c.headDimension
        let qWidth = c.heads * d, kvWidth = c.kvHeads * d, qkvWidth = qWidth + 2 * kvWidth
        let inter = c.intermediateSize
        let first = cache.count, capacity = cache.capacity, kvHeads = c.kvHeads
        // Offset of (layer, kv head, slot) in the cache arrays; see KVCache.
        func slot(_ layer: Int, _ head: Int, _ s: Int) -> Int { ((layer * kvHeads + head) * capacity + s) * d }
        var scores = self.scores
        defer { self.scores = scores }
        let x = hidden.pointer, xn = normed.pointer, qkv = qkv.pointer, att = attended.pointer, gu = gateUp.pointer
        positionBuffer.withUnsafeBufferPointer { positions in
            cache.withMutableStorage { keys, values in
                do {
                    for (l, layer) in model.layers.enumerated() {
                        rmsNorm(x, rows: n, width: h, weight: layer.attentionNorm, eps: c.rmsNormEps, into: xn)
                        linear(xn, rows: n, inputStride: h, weight: layer.qkv, into: qkv, outputStride: qkvWidth)
                        applyRotary(qkv, rows: n, rowStride: qkvWidth, heads: c.heads, tables: model.rotary, positions: positions)
                        applyRotary(qkv + qWidth, rows: n, rowStride: qkvWidth, heads: c.kvHeads, tables: model.rotary, positions: positions)
                        for r in 0..<n {
                            for kvh in 0..<c.kvHeads {
                                let at = slot(l, kvh, first + r)
                                let row = qkv + r * qkvWidth + qWidth + kvh * d
                                (keys.baseAddress! + at).update(from: row, count: d)
                                (values.baseAddress! + at).update(from: row + kvWidth, count: d)
                            }
                        }
                        let base = slot(l, 0, 0)
                        cachedAttention(query: qkv, queryStride: qkvWidth, rows: n, heads: c.heads,
                                        keys: keys.baseAddress! + base, values: values.baseAddress! + base,
                                        kvHeads: kvHeads, headDimension: d, capacity: capacity,
                                        length: first + n, firstSlot: first, output: att, outputStride: qWidth,
                                        scratch: &scores)
                        linear(att, rows: n, inputStride: qWidth, weight: layer.output, into: x, outputStride: h, accumulate: true)
                        rmsNorm(x, rows: n, width: h, weight: layer.mlpNorm, eps: c.rmsNormEps, into: xn)
                        linear(xn, rows: n, inputStride: h, weight: layer.gateUp, into: gu, outputStride: 2 * inter)
                        siluMultiply(gate: gu, up: gu + inter, rows: n, width: inter, stride: 2 * inter)
                        linear(gu, rows: n, inputStride: 2 * inter, weight: layer.down, into: x, outputStride: h, accumulate: true)
                    }
                }
            }
        }
        cache.count = first + n
    }

    /// Final norm and lm_head: of the last row into `logits`, or of every row (returned) when `all`.
    @discardableResult
    private func computeLogits(rows n: Int, all: Bool) -> Matrix {
        let c = model.configuration
        let h = c.hiddenSize
        let from = all ? 0 : n - 1, count = all ? n : 1
        rmsNorm(hidden.pointer + from * h, rows: count, width: h, weight: model.norm, eps: c.rmsNormEps, into: normed.pointer)
        if all {
            var out = Matrix(rows: n, cols: c.vocabularySize)
            out.storage.withUnsafeMutableBufferPointer { o in
                linear(normed.pointer, rows: n, inputStride: h, weight: model.lmHead, into: o.baseAddress!, outputStride: c.vocabularySize)
            }
            out.storage.withUnsafeBufferPointer { src in
                logits.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: src.baseAddress! + (n - 1) * c.vocabularySize, count: c.vocabularySize) }
            }
            return out
        }
        logits.withUnsafeMutableBufferPointer { o in
            linear(normed.pointer, rows: 1, inputStride: h, weight: model.lmHead, into: o.baseAddress!, outputStride: c.vocabularySize)
        }
        return Matrix(rows: 0, cols: 0)
    }
}

/// A growable scratch buffer with a stable pointer between resizes.
private final class Buffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private var capacity = 1

    init() {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: 0)
    }

    func resize(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
        capacity = count
    }

    deinit { pointer.deallocate() }
}
