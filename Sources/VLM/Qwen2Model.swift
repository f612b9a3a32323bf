// The Qwen2 decoder of Qwen2.5-VL: token embeddings → N × (RMSNorm → grouped-query attention with
// biases on q/k/v and multimodal RoPE → residual → RMSNorm → SwiGLU → residual) → RMSNorm → lm_head
// (tied to the embeddings when the config says so).
//
// M-RoPE: every row carries three positions (t, h, w). Frequency i of a head's half-dimension takes
// its angle from one axis, chosen by mrope_section ([16, 24, 24] for 3B: frequencies 0..<16 from t,
// 16..<40 from h, 40..<64 from w); both halves of the head rotate by that angle (rotate_half
// layout). Text rows have t = h = w, which is plain 1-D RoPE.
//
// Weights stay in their stored precision (WeightMatrix: BF16 checkpoints stay BF16 and are expanded
// per product into one scratch). Sessions reuse the shared KVCache layout, sampling and options.
import Foundation
import Tensor

/// One row's multimodal rotary position.
public struct MRoPEPosition: Sendable, Hashable, CustomStringConvertible {
    public var t: Int
    public var h: Int
    public var w: Int
    public init(t: Int, h: Int, w: Int) {
        self.t = t
        self.h = h
        self.w = w
    }
    /// A text row: the same position on all three axes.
    public init(text p: Int) { self.init(t: p, h: p, w: p) }
    public var maximum: Int { Swift.max(t, h, w) }
    public var description: String { "(\(t),\(h),\(w))" }
}

public final class Qwen2Model: Sendable {
    struct Layer: Sendable {
        let attentionNorm: [Float]
        let qkv: WeightMatrix      // [(heads + 2·kvHeads)·d, hidden]
        let qkvBias: [Float]
        let output: WeightMatrix   // [hidden, heads·d], no bias
        let mlpNorm: [Float]
        let gateUp: WeightMatrix   // [2·intermediate, hidden]
        let down: WeightMatrix     // [hidden, intermediate]
    }

    public let configuration: Qwen2Configuration
    let embedding: WeightMatrix
    let layers: [Layer]
    let norm: [Float]
    let lmHead: WeightMatrix
    /// Inverse frequency i and the axis (0 t, 1 h, 2 w) it reads.
    let inverseFrequencies: [Float]
    let axisOfFrequency: [Int]

    init(configuration c: Qwen2Configuration, embedding: WeightMatrix, layers: [Layer], norm: [Float], lmHead: WeightMatrix) {
        configuration = c
        self.embedding = embedding
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
        let half = c.headDimension / 2
        inverseFrequencies = (0..<half).map { i in 1 / Foundation.pow(c.ropeTheta, Float(2 * i) / Float(c.headDimension)) }
        var axes: [Int] = []
        for (axis, n) in c.mropeSection.enumerated() { axes += Array(repeating: axis, count: n) }
        axisOfFrequency = axes
    }

    /// Loads the decoder of a Qwen2.5-VL directory (config.json + safetensors).
    public convenience init(directory: String) throws(VLMError) {
        let configuration = try Qwen2Configuration(configFile: (directory as NSString).appendingPathComponent("config.json"))
        let store: WeightStore
        do { store = try WeightStore(directory: directory) } catch { throw .weights(error) }
        try self.init(configuration: configuration, weights: store)
    }

    public convenience init(configuration c: Qwen2Configuration, weights store: WeightStore) throws(VLMError) {
        // Hub checkpoints: "model.layers…"; transformers 5 exports may write "model.language_model.layers…".
        let prefixes = ["model.language_model.", "model.", "language_model.model.", ""]
        guard let prefix = prefixes.first(where: { store.contains($0 + "embed_tokens.weight") }) else {
            throw .badTensor(file: store.directory, tensor: "model.embed_tokens.weight", cause: "missing (no decoder embeddings under any known prefix)")
        }
        let h = c.hiddenSize, d = c.headDimension
        func matrix(_ name: String, _ shape: [Int]) throws(VLMError) -> Matrix {
            do { return try store.matrix(name, shape: shape) } catch { throw .weights(error) }
        }
        func weight(_ names: [String], _ shapes: [[Int]]) throws(VLMError) -> WeightMatrix {
            var storage: [Float] = []
            var rows = 0
            for (name, shape) in zip(names, shapes) {
                let m = try matrix(prefix + name, shape)
                storage += m.storage
                rows += m.rows
            }
            let bf16 = names.allSatisfy { store.entry(prefix + $0)?.dtype == "BF16" }
            do { return WeightMatrix(try Matrix(rows: rows, cols: shapes[0][1], storage: storage), bf16: bf16) } catch {
                throw .malformed(file: store.directory, cause: "stacking \(names): \(error)")
            }
        }
        func vector(_ name: String, _ count: Int) throws(VLMError) -> [Float] {
            do { return try store.vector(prefix + name, count: count) } catch { throw .weights(error) }
        }
        let embedding = try weight(["embed_tokens.weight"], [[c.vocabularySize, h]])
        var layers: [Layer] = []
        for i in 0..<c.layers {
            let p = "layers.\(i)."
            layers.append(Layer(
                attentionNorm: try vector(p + "input_layernorm.weight", h),
                qkv: try weight([p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"],
                                [[c.heads * d, h], [c.kvHeads * d, h], [c.kvHeads * d, h]]),
                qkvBias: try vector(p + "self_attn.q_proj.bias", c.heads * d) + vector(p + "self_attn.k_proj.bias", c.kvHeads * d)
                    + vector(p + "self_attn.v_proj.bias", c.kvHeads * d),
                output: try weight([p + "self_attn.o_proj.weight"], [[h, c.heads * d]]),
                mlpNorm: try vector(p + "post_attention_layernorm.weight", h),
                gateUp: try weight([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"], [[c.intermediateSize, h], [c.intermediateSize, h]]),
                down: try weight([p + "mlp.down_proj.weight"], [[h, c.intermediateSize]])))
        }
        let norm = try vector("norm.weight", h)
        let lmHead: WeightMatrix
        if c.tieWordEmbeddings || !store.contains("lm_head.weight") {
            guard c.tieWordEmbeddings else {
                throw .badTensor(file: store.directory, tensor: "lm_head.weight", cause: "missing and tie_word_embeddings is false")
            }
            lmHead = embedding
        } else {
            let m = try matrix("lm_head.weight", [c.vocabularySize, h])
            lmHead = WeightMatrix(m, bf16: store.entry("lm_head.weight")?.dtype == "BF16")
        }
        self.init(configuration: c, embedding: embedding, layers: layers, norm: norm, lmHead: lmHead)
    }

    /// Random weights at the given shapes (benchmarks): every layer shares one layer's weights, so
    /// memory is one layer plus the embeddings whatever the depth.
    public convenience init(randomShapes c: Qwen2Configuration, seed: UInt64 = 1) {
        var state = seed
        func next() -> Float {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24) - 0.5
        }
        func random(_ rows: Int, _ cols: Int, _ scale: Float) -> WeightMatrix {
            var m = Matrix(rows: rows, cols: cols)
            for i in 0..<m.storage.count { m.storage[i] = next() * scale }
            return WeightMatrix(m, bf16: true)
        }
        let h = c.hiddenSize, d = c.headDimension, s = 3.4 / Float(h).squareRoot()
        let layer = Layer(attentionNorm: Array(repeating: 1, count: h), qkv: random((c.heads + 2 * c.kvHeads) * d, h, s),
                          qkvBias: Array(repeating: 0.01, count: (c.heads + 2 * c.kvHeads) * d),
                          output: random(h, c.heads * d, s), mlpNorm: Array(repeating: 1, count: h),
                          gateUp: random(2 * c.intermediateSize, h, s),
                          down: random(h, c.intermediateSize, 3.4 / Float(c.intermediateSize).squareRoot()))
        let embedding = random(c.vocabularySize, h, 1)
        self.init(configuration: c, embedding: embedding, layers: Array(repeating: layer, count: c.layers),
                  norm: Array(repeating: 1, count: h), lmHead: embedding)
    }

    /// Token embeddings of `ids`, [ids.count, hidden].
    public func embed(_ ids: [Int]) throws(VLMError) -> Matrix {
        let h = configuration.hiddenSize
        var out = Matrix(rows: ids.count, cols: h)
        for (r, id) in ids.enumerated() {
            guard id >= 0, id < embedding.rows else { throw .tokenOutOfRange(id: id, vocabulary: embedding.rows) }
            out.storage.withUnsafeMutableBufferPointer { embedding.copyRow(id, into: $0.baseAddress! + r * h) }
        }
        return out
    }

    /// Bytes of weights held (BF16 counts 2 per value).
    public var weightBytes: Int {
        let tied = lmHead.rows == embedding.rows && configuration.tieWordEmbeddings
        var n = embedding.byteCount + (tied ? 0 : lmHead.byteCount) + norm.count * 4
        // Shared layers (benchmarks) count once per layer anyway: this is what a real model holds.
        for l in layers { n += l.qkv.byteCount + l.output.byteCount + l.gateUp.byteCount + l.down.byteCount + (l.qkvBias.count + 2 * l.attentionNorm.count) * 4 }
        return n
    }
}

/// One sequence on a Qwen2 decoder: a KV cache and working buffers. `prefill` takes input
/// embeddings with their M-RoPE positions; `step` feeds one token at a position. After either,
/// `logits` holds the next-token logits of the last row.
public final class Qwen2Session {
    public let model: Qwen2Model
    public var cache: KVCache
    public private(set) var logits: [Float]
    /// Position of the next generated token (max prompt position + 1, then + 1 per token).
    public var nextPosition = 0
    private var scratch: [Float] = []
    private var scores: [Float] = []

    public init(model: Qwen2Model, context: Int? = nil) throws(VLMError) {
        self.model = model
        let c = model.configuration
        cache = try KVCache(configuration: c.cacheShape, capacity: context ?? min(c.maxPositions, 4096))
        logits = [Float](repeating: 0, count: c.vocabularySize)
    }

    /// Feeds `embeddings` [rows, hidden] at `positions` after what the cache holds; returns the
    /// final-norm hidden states of every row when `keepHidden` (tests), else an empty matrix.
    @discardableResult
    public func prefill(embeddings: Matrix, positions: [MRoPEPosition], keepHidden: Bool = false) throws(VLMError) -> Matrix {
        let c = model.configuration
        let n = embeddings.rows
        guard embeddings.cols == c.hiddenSize else {
            throw .invalidArgument(name: "embeddings", cause: "width \(embeddings.cols), the model's hidden size is \(c.hiddenSize)")
        }
        guard n > 0 else { throw .invalidArgument(name: "prompt", cause: "empty") }
        guard positions.count == n else {
            throw .invalidArgument(name: "positions", cause: "\(positions.count) positions for \(n) rows")
        }
        guard cache.count + n <= cache.capacity else { throw .contextOverflow(tokens: cache.count + n, context: cache.capacity) }
        var x = embeddings
        forward(&x, positions: positions)
        var normed = Matrix(rows: n, cols: c.hiddenSize)
        x.storage.withUnsafeBufferPointer { px in
            normed.storage.withUnsafeMutableBufferPointer { po in
                rmsNorm(px.baseAddress!, rows: n, width: c.hiddenSize, weight: model.norm, eps: c.rmsNormEps, into: po.baseAddress!)
            }
        }
        normed.storage.withUnsafeBufferPointer { pn in
            logits.withUnsafeMutableBufferPointer { pl in
                linear(pn.baseAddress! + (n - 1) * c.hiddenSize, rows: 1, inputStride: c.hiddenSize, weight: model.lmHead,
                       into: pl.baseAddress!, outputStride: c.vocabularySize, scratch: &scratch)
            }
        }
        nextPosition = max(nextPosition, (positions.map(\.maximum).max() ?? -1) + 1)
        return keepHidden ? normed : Matrix(rows: 0, cols: 0)
    }

    /// Logits [rows, vocab] of final-norm hidden states (tests).
    public func logits(ofHidden hidden: Matrix) throws(VLMError) -> Matrix {
        do {
            var s: [Float] = []
            return try linear(hidden, weight: model.lmHead, scratch: &s)
        } catch {
            throw .invalidArgument(name: "hidden states", cause: "\(error)")
        }
    }

    /// Feeds one token at `nextPosition` (on all three axes) and advances it.
    public func step(token: Int) throws(VLMError) {
        let c = model.configuration
        guard token >= 0, token < c.vocabularySize else { throw .tokenOutOfRange(id: token, vocabulary: c.vocabularySize) }
        _ = try prefill(embeddings: model.embed([token]), positions: [MRoPEPosition(text: nextPosition)])
    }

    /// Greedy or sampled generation from the logits of the last prefill, as LlamaSession does it.
    public func generate(options: GenerationOptions, history: [Int] = [],
                         onToken: (Int) throws -> Bool = { _ in true }) throws -> GenerationResult {
        var sampler = try Sampler(parameters: options.sampling)
        let vocabulary = model.configuration.vocabularySize
        sampler.observe(history, vocabulary: vocabulary)
        var tokens: [Int] = []
        var reason = GenerationResult.StopReason.maxTokens
        let start = DispatchTime.now()
        while tokens.count < options.maxNewTokens {
            var work = logits
            let token = sampler.next(&work)
            if options.stopTokens.contains(token) { reason = .stopToken(token); break }
            tokens.append(token)
            sampler.observe([token], vocabulary: vocabulary)
            if try !onToken(token) { reason = .stoppedByCaller; break }
            if tokens.count == options.maxNewTokens { break }
            try step(token: token)
        }
        return GenerationResult(tokens: tokens, stopReason: reason, promptTokens: 0, promptSeconds: 0,
                                decodeSeconds: seconds(since: start))
    }

    /// Cos/sin [rows, half] of each row's M-RoPE angles.
    private func rotary(_ positions: [MRoPEPosition]) -> (cos: [Float], sin: [Float]) {
        let inverse = model.inverseFrequencies, axes = model.axisOfFrequency, half = inverse.count
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (r, p) in positions.enumerated() {
            let axis = [p.t, p.h, p.w]
            for i in 0..<half {
                let angle = Float(axis[axes[i]]) * inverse[i]
                c[r * half + i] = Foundation.cos(angle)
                s[r * half + i] = Foundation.sin(angle)
            }
        }
        return (c, s)
    }

    private func forward(_ x: inout Matrix, positions: [MRoPEPosition]) {
        let c = model.configuration
        let n = x.rows, h = c.hiddenSize, d = c.headDimension, half = d / 2
        let qWidth = c.heads * d, kvWidth = c.kvHeads * d, qkvWidth = qWidth + 2 * kvWidth
        let inter = c.intermediateSize
        let first = cache.count, capacity = cache.capacity, kvHeads = c.kvHeads
        func slot(_ layer: Int, _ head: Int, _ s: Int) -> Int { ((layer * kvHeads + head) * capacity + s) * d }
        let (cosTable, sinTable) = rotary(positions)
        var normed = [Float](repeating: 0, count: n * h)
        var qkv = [Float](repeating: 0, count: n * qkvWidth)
        var attended = [Float](repeating: 0, count: n * qWidth)
        var gateUp = [Float](repeating: 0, count: n * 2 * inter)
        var scratch = self.scratch, scores = self.scores
        defer { self.scratch = scratch; self.scores = scores }
        x.storage.withUnsafeMutableBufferPointer { px in
        normed.withUnsafeMutableBufferPointer { pn in
        qkv.withUnsafeMutableBufferPointer { pq in
        attended.withUnsafeMutableBufferPointer { pa in
        gateUp.withUnsafeMutableBufferPointer { pg in
        cosTable.withUnsafeBufferPointer { pc in
        sinTable.withUnsafeBufferPointer { ps in
            cache.withMutableStorage { keys, values in
                let x = px.baseAddress!, xn = pn.baseAddress!, q = pq.baseAddress!, att = pa.baseAddress!, gu = pg.baseAddress!
                for (l, layer) in model.layers.enumerated() {
                    rmsNorm(x, rows: n, width: h, weight: layer.attentionNorm, eps: c.rmsNormEps, into: xn)
                    linear(xn, rows: n, inputStride: h, weight: layer.qkv, bias: layer.qkvBias, into: q, outputStride: qkvWidth, scratch: &scratch)
                    // M-RoPE on the query heads and the key heads (rotate_half layout).
                    for r in 0..<n {
                        let cr = pc.baseAddress! + r * half, sr = ps.baseAddress! + r * half
                        for head in 0..<(c.heads + c.kvHeads) {
                            let v = q + r * qkvWidth + head * d
                            for i in 0..<half {
                                let a = v[i], b = v[i + half]
                                v[i] = a * cr[i] - b * sr[i]
                                v[i + half] = b * cr[i] + a * sr[i]
                            }
                        }
                        for kvh in 0..<kvHeads {
                            let at = slot(l, kvh, first + r)
                            let row = q + r * qkvWidth + qWidth + kvh * d
                            (keys.baseAddress! + at).update(from: row, count: d)
                            (values.baseAddress! + at).update(from: row + kvWidth, count: d)
                        }
                    }
                    let base = slot(l, 0, 0)
                    cachedAttention(query: q, queryStride: qkvWidth, rows: n, heads: c.heads,
                                    keys: keys.baseAddress! + base, values: values.baseAddress! + base,
                                    kvHeads: kvHeads, headDimension: d, capacity: capacity,
                                    length: first + n, firstSlot: first, output: att, outputStride: qWidth, scratch: &scores)
                    linear(att, rows: n, inputStride: qWidth, weight: layer.output, into: x, outputStride: h, accumulate: true, scratch: &scratch)
                    rmsNorm(x, rows: n, width: h, weight: layer.mlpNorm, eps: c.rmsNormEps, into: xn)
                    linear(xn, rows: n, inputStride: h, weight: layer.gateUp, into: gu, outputStride: 2 * inter, scratch: &scratch)
                    siluMultiply(gate: gu, up: gu + inter, rows: n, width: inter, stride: 2 * inter)
                    linear(gu, rows: n, inputStride: 2 * inter, weight: layer.down, into: x, outputStride: h, accumulate: true, scratch: &scratch)
                }
            }
        }
        }
        }
        }
        }
        }
        }
        cache.count = first + n
    }
}
