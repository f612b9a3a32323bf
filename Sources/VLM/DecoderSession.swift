// Running a decoder: a session owns a KV cache and the working buffers of one sequence, for any
// DecoderWeights (Llama / SmolLM2, Qwen2). `prefill` takes token ids or input embeddings (any
// number of rows, on sgemm) with their rotary positions; `step` feeds one token (single-row
// products, attention over the cache) and allocates nothing once the buffers have their size.
// After either call `logits` holds the next-token logits of the last row.
//
// Positions: by default a row's position is the cache's `nextPosition` onwards; M-RoPE prompts
// give (t, h, w) per row. Either way generation continues from the cache's `nextPosition`.
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// One row's rotary position: (t, h, w) for M-RoPE; a text row (and every row of a 1-D RoPE model)
/// has the same position on all three axes.
public struct MRoPEPosition: Sendable, Hashable, CustomStringConvertible {
    public var t: Int
    public var h: Int
    public var w: Int
    public init(t: Int, h: Int, w: Int) {
        self.t = t
        self.h = h
        self.w = w
    }
    public init(text p: Int) { self.init(t: p, h: p, w: p) }
    public var maximum: Int { Swift.max(t, h, w) }
    public var description: String { "(\(t),\(h),\(w))" }
}

public final class DecoderSession {
    public let decoder: DecoderWeights
    public var cache: KVCache
    /// Next-token logits after the last processed row.
    public private(set) var logits: [Float]

    private var rowCapacity = 0
    private let hidden = Buffer(), normed = Buffer(), qkv = Buffer(), attended = Buffer(), gateUp = Buffer()
    private let rotaryCos = Buffer(), rotarySin = Buffer()
    private var scores: [Float] = []
    /// Receives a BF16 matrix's widening before a multi-row product.
    private var scratch: [Float] = []
    private var rowPositions: [MRoPEPosition] = []

    /// A session with an empty cache of `context` tokens (default: the model's maximum, at most 4096).
    public init(model: some DecoderModel, context: Int? = nil) throws(VLMError) {
        decoder = model.decoder
        let s = decoder.shape
        cache = try KVCache(shape: s, capacity: context ?? min(s.maxPositions, 4096))
        logits = [Float](repeating: 0, count: s.vocabularySize)
    }

    /// A session continuing from a cache (e.g. a copy of a shared prefix). A cache made for another
    /// model shape is reported by the first prefill or step.
    public init(model: some DecoderModel, cache: KVCache) {
        decoder = model.decoder
        self.cache = cache
        logits = [Float](repeating: 0, count: decoder.shape.vocabularySize)
    }

    /// Feeds `tokens` after what the cache holds.
    public func prefill(tokens: [Int]) throws(VLMError) {
        try run(embeddings: decoder.embed(tokens), positions: nil, output: .lastLogits)
    }

    /// Feeds input embeddings ([rows, hidden]) after what the cache holds, at 1-D positions
    /// (default: from the cache's next position on).
    public func prefill(embeddings: Matrix, positions: [Int]? = nil) throws(VLMError) {
        try run(embeddings: embeddings, positions: positions?.map { MRoPEPosition(text: $0) }, output: .lastLogits)
    }

    /// Feeds input embeddings at M-RoPE positions; returns the final-norm hidden states of every row
    /// when `keepHidden` (tests), else an empty matrix.
    @discardableResult
    public func prefill(embeddings: Matrix, positions: [MRoPEPosition], keepHidden: Bool = false) throws(VLMError) -> Matrix {
        try run(embeddings: embeddings, positions: positions, output: keepHidden ? .hidden : .lastLogits)
    }

    /// Feeds `tokens` and returns the logits of every row, [tokens, vocab] (tests and scoring).
    public func logitsOfEveryRow(tokens: [Int]) throws(VLMError) -> Matrix {
        try run(embeddings: decoder.embed(tokens), positions: nil, output: .allLogits)
    }

    /// Logits [rows, vocab] of final-norm hidden states (tests).
    public func logits(ofHidden hidden: Matrix) throws(VLMError) -> Matrix {
        do {
            return try linear(hidden, weight: decoder.lmHead, scratch: &scratch)
        } catch {
            throw .invalidArgument(name: "hidden states", cause: "\(error)")
        }
    }

    /// Feeds one token at the cache's next position (the decode step).
    public func step(token: Int) throws(VLMError) {
        let s = decoder.shape
        guard token >= 0, token < s.vocabularySize else { throw .tokenOutOfRange(id: token, vocabulary: s.vocabularySize) }
        try checkCacheShape()
        guard cache.count < cache.capacity else { throw .contextOverflow(tokens: cache.count + 1, context: cache.capacity) }
        guard cache.nextPosition < s.maxPositions else {
            throw .contextOverflow(tokens: cache.nextPosition + 1, context: s.maxPositions)
        }
        reserve(rows: 1)
        decoder.embedding.copyRow(token, into: hidden.pointer)
        if rowPositions.isEmpty { rowPositions = [MRoPEPosition(text: 0)] }
        rowPositions[0] = MRoPEPosition(text: cache.nextPosition)
        forward(rows: 1)
        finish(rows: 1, output: .lastLogits)
    }

    private enum Output { case lastLogits, allLogits, hidden }

    @discardableResult
    private func run(embeddings: Matrix, positions: [MRoPEPosition]?, output: Output) throws(VLMError) -> Matrix {
        let s = decoder.shape
        let n = embeddings.rows
        guard embeddings.cols == s.hiddenSize else {
            throw .invalidArgument(name: "embeddings", cause: "width \(embeddings.cols), the model's hidden size is \(s.hiddenSize)")
        }
        guard n > 0 else { throw .invalidArgument(name: "prompt", cause: "empty") }
        try checkCacheShape()
        guard cache.count + n <= cache.capacity else {
            throw .contextOverflow(tokens: cache.count + n, context: cache.capacity)
        }
        let rows = positions ?? (cache.nextPosition..<(cache.nextPosition + n)).map { MRoPEPosition(text: $0) }
        guard rows.count == n, rows.allSatisfy({ min($0.t, $0.h, $0.w) >= 0 && $0.maximum < s.maxPositions }) else {
            throw .invalidArgument(name: "positions", cause: "need \(n) positions in 0 ..< \(s.maxPositions)")
        }
        reserve(rows: n)
        embeddings.storage.withUnsafeBufferPointer { hidden.pointer.update(from: $0.baseAddress!, count: n * s.hiddenSize) }
        rowPositions = rows
        forward(rows: n)
        defer { if n > 1 { releaseRowBuffers() } }
        return finish(rows: n, output: output)
    }

    /// After a multi-row run: the row buffers shrink back (the next step sizes them for one row) and
    /// the converted weight tiles' scratch goes, so what stays resident between prompts is weights,
    /// cache, logits and the attention scores' few blocks of rows.
    private func releaseRowBuffers() {
        for buffer in [hidden, normed, qkv, attended, gateUp, rotaryCos, rotarySin] { buffer.release() }
        rowCapacity = 0
        scratch = []
    }

    private func checkCacheShape() throws(VLMError) {
        let s = decoder.shape
        guard cache.layers == s.layers, cache.kvHeads == s.kvHeads, cache.headDimension == s.headDimension,
              cache.capacity <= s.maxPositions else {
            throw .invalidArgument(name: "KV cache", cause: "\(cache.layers) layers × \(cache.kvHeads) kv heads × \(cache.headDimension) does not fit a model of \(s.layers) × \(s.kvHeads) × \(s.headDimension)")
        }
    }

    private func reserve(rows: Int) {
        guard rows > rowCapacity else { return }
        let s = decoder.shape
        let qkvWidth = (s.heads + 2 * s.kvHeads) * s.headDimension
        hidden.resize(rows * s.hiddenSize)
        normed.resize(rows * s.hiddenSize)
        qkv.resize(rows * qkvWidth)
        attended.resize(rows * s.heads * s.headDimension)
        gateUp.resize(rows * 2 * s.intermediateSize)
        rotaryCos.resize(rows * s.headDimension)
        rotarySin.resize(rows * s.headDimension)
        rowCapacity = rows
    }

    /// Runs every layer over `rows` rows in `hidden` at `rowPositions`, appending their keys and
    /// values to the cache.
    private func forward(rows n: Int) {
        let s = decoder.shape
        let h = s.hiddenSize, d = s.headDimension
        let qWidth = s.heads * d, kvWidth = s.kvHeads * d, qkvWidth = qWidth + 2 * kvWidth
        let inter = s.intermediateSize
        let first = cache.count, capacity = cache.capacity, kvHeads = s.kvHeads
        // Offset of (layer, kv head, slot) in the cache arrays; see KVCache.
        func slot(_ layer: Int, _ head: Int, _ at: Int) -> Int { ((layer * kvHeads + head) * capacity + at) * d }
        let positions = rowPositions
        if let axes = decoder.axisOfFrequency {
            fillRotaryRows(rows: n, inverseFrequencies: decoder.inverseFrequencies, position: { r, i in
                let p = positions[r]
                switch axes[i] { case 0: return p.t; case 1: return p.h; default: return p.w }
            }, cos: rotaryCos.pointer, sin: rotarySin.pointer)
        } else {
            fillRotaryRows(rows: n, inverseFrequencies: decoder.inverseFrequencies, position: { r, _ in positions[r].t },
                           cos: rotaryCos.pointer, sin: rotarySin.pointer)
        }
        var scores = self.scores, scratch = self.scratch
        defer { self.scores = scores; self.scratch = scratch }
        let x = hidden.pointer, xn = normed.pointer, qkv = qkv.pointer, att = attended.pointer, gu = gateUp.pointer
        let cos = UnsafePointer(rotaryCos.pointer), sin = UnsafePointer(rotarySin.pointer)
        cache.withMutableStorage { keys, values in
            for (l, layer) in decoder.layers.enumerated() {
                rmsNorm(x, rows: n, width: h, weight: layer.attentionNorm, eps: s.rmsNormEps, into: xn)
                linear(xn, rows: n, inputStride: h, weight: layer.qkv, bias: layer.qkvBias, into: qkv, outputStride: qkvWidth,
                       scratch: &scratch)
                // Query and key heads sit side by side in each row: one rotation covers both.
                applyRotary(qkv, rows: n, rowStride: qkvWidth, heads: s.heads + s.kvHeads, dimension: d, cos: cos, sin: sin)
                for r in 0..<n {
                    for kvh in 0..<kvHeads {
                        let at = slot(l, kvh, first + r)
                        let row = qkv + r * qkvWidth + qWidth + kvh * d
                        (keys.baseAddress! + at).update(from: row, count: d)
                        (values.baseAddress! + at).update(from: row + kvWidth, count: d)
                    }
                }
                let base = slot(l, 0, 0)
                cachedAttention(query: qkv, queryStride: qkvWidth, rows: n, heads: s.heads,
                                keys: keys.baseAddress! + base, values: values.baseAddress! + base,
                                kvHeads: kvHeads, headDimension: d, capacity: capacity,
                                length: first + n, firstSlot: first, output: att, outputStride: qWidth,
                                scratch: &scores)
                linear(att, rows: n, inputStride: qWidth, weight: layer.output, into: x, outputStride: h, accumulate: true,
                       scratch: &scratch)
                rmsNorm(x, rows: n, width: h, weight: layer.mlpNorm, eps: s.rmsNormEps, into: xn)
                linear(xn, rows: n, inputStride: h, weight: layer.gateUp, into: gu, outputStride: 2 * inter, scratch: &scratch)
                siluMultiply(gate: gu, up: gu + inter, rows: n, width: inter, stride: 2 * inter)
                linear(gu, rows: n, inputStride: 2 * inter, weight: layer.down, into: x, outputStride: h, accumulate: true,
                       scratch: &scratch)
            }
        }
        cache.count = first + n
        cache.nextPosition = max(cache.nextPosition, (positions.prefix(n).map(\.maximum).max() ?? -1) + 1)
    }

    /// Final norm, then lm_head of the last row into `logits` (returning nothing), of every row
    /// (returned, and the last into `logits`), or no lm_head at all (the normed rows returned).
    @discardableResult
    private func finish(rows n: Int, output: Output) -> Matrix {
        let s = decoder.shape
        let h = s.hiddenSize, vocabulary = s.vocabularySize
        let from = output == .lastLogits ? n - 1 : 0, count = output == .lastLogits ? 1 : n
        rmsNorm(hidden.pointer + from * h, rows: count, width: h, weight: decoder.norm, eps: s.rmsNormEps, into: normed.pointer)
        switch output {
        case .hidden:
            var out = Matrix(rows: n, cols: h)
            out.storage.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: normed.pointer, count: n * h) }
            logits.withUnsafeMutableBufferPointer { o in
                linear(normed.pointer + (n - 1) * h, rows: 1, inputStride: h, weight: decoder.lmHead, into: o.baseAddress!,
                       outputStride: vocabulary, scratch: &scratch)
            }
            return out
        case .allLogits:
            var out = Matrix(rows: n, cols: vocabulary)
            out.storage.withUnsafeMutableBufferPointer { o in
                linear(normed.pointer, rows: n, inputStride: h, weight: decoder.lmHead, into: o.baseAddress!,
                       outputStride: vocabulary, scratch: &scratch)
                logits.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: o.baseAddress! + (n - 1) * vocabulary, count: vocabulary) }
            }
            return out
        case .lastLogits:
            logits.withUnsafeMutableBufferPointer { o in
                linear(normed.pointer, rows: 1, inputStride: h, weight: decoder.lmHead, into: o.baseAddress!,
                       outputStride: vocabulary, scratch: &scratch)
            }
            return Matrix(rows: 0, cols: 0)
        }
    }
}

/// A growable scratch buffer with a stable pointer between resizes. Its pages are mapped for it alone,
/// so `release` hands them back to the system: a prompt's rows take tens of MB at 7B shapes (gate+up
/// alone is rows × 2 × intermediate floats) that the one-row decode steps after it never touch, and
/// memory freed to the heap would stay resident.
private final class Buffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private var capacity: Int

    init() { (pointer, capacity) = Self.map(1) }

    func resize(_ count: Int) {
        guard count > capacity else { return }
        Self.unmap(pointer, capacity)
        (pointer, capacity) = Self.map(count)
    }

    /// Back to one float: the pages go back to the system.
    func release() {
        guard capacity > 1 else { return }
        Self.unmap(pointer, capacity)
        (pointer, capacity) = Self.map(1)
    }

    deinit { Self.unmap(pointer, capacity) }

    /// Zero-filled pages (anonymous mappings start zeroed). Running out of address space is fatal, as
    /// any allocation's failure is in Swift.
    private static func map(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        let bytes = count * MemoryLayout<Float>.stride
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            fatalError("out of memory: \(bytes) bytes of decoder working buffers")
        }
        return (raw.bindMemory(to: Float.self, capacity: count), count)
    }

    private static func unmap(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) {
        munmap(pointer, count * MemoryLayout<Float>.stride)
    }
}
