// The Llama / SmolLM2 decoder: token embeddings → N × (RMSNorm → GQA attention with RoPE →
// residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm → lm_head (tied to the embeddings or not).
//
// Weights are Float32 matrices in PyTorch's [out, in] layout. Q, K and V are stacked into one
// matrix per layer, and so are gate and up, so that a step costs two matrix products fewer.
// Sources: a Hugging Face directory (LlamaForCausalLM: `model.*`; SmolVLM / Idefics3: `model.text_model.*`,
// `lm_head.*` at the top) or a GGUF (token_embd, blk.N.attn_q …, output_norm, output), where
// llama.cpp's conversion permuted the rows of Q and K (see `unpermuteRotaryRows`).
import Foundation
import Tensor

public final class LlamaModel: Sendable {
    struct Layer: Sendable {
        let attentionNorm: [Float]
        let qkv: Matrix        // [(heads + 2·kvHeads)·d, hidden]
        let output: Matrix     // [hidden, heads·d]
        let mlpNorm: [Float]
        let gateUp: Matrix     // [2·intermediate, hidden]
        let down: Matrix       // [hidden, intermediate]
    }

    public let configuration: LlamaConfiguration
    let embedding: Matrix      // [vocab, hidden]
    let layers: [Layer]
    let norm: [Float]
    let lmHead: Matrix         // [vocab, hidden]; shares the embedding's storage when tied
    /// cos/sin for positions 0 ..< configuration.maxPositions.
    let rotary: RotaryTables

    /// Assembles a model from tensors fetched by their Hugging Face names (without prefix):
    /// `embed_tokens.weight`, `layers.N.self_attn.q_proj.weight`, …, `norm.weight`, `lm_head.weight`.
    init(configuration c: LlamaConfiguration, source: String,
         tensor: (_ name: String, _ shape: [Int]) throws(VLMError) -> Matrix) throws(VLMError) {
        configuration = c
        let d = c.headDimension, h = c.hiddenSize
        func vector(_ name: String) throws(VLMError) -> [Float] { try tensor(name, [h]).storage }
        embedding = try tensor("embed_tokens.weight", [c.vocabularySize, h])
        var layers: [Layer] = []
        for i in 0..<c.layers {
            let p = "layers.\(i)."
            let q = try tensor(p + "self_attn.q_proj.weight", [c.heads * d, h])
            let k = try tensor(p + "self_attn.k_proj.weight", [c.kvHeads * d, h])
            let v = try tensor(p + "self_attn.v_proj.weight", [c.kvHeads * d, h])
            let gate = try tensor(p + "mlp.gate_proj.weight", [c.intermediateSize, h])
            let up = try tensor(p + "mlp.up_proj.weight", [c.intermediateSize, h])
            layers.append(Layer(
                attentionNorm: try vector(p + "input_layernorm.weight"),
                qkv: try stack([q, k, v], source: source),
                output: try tensor(p + "self_attn.o_proj.weight", [h, c.heads * d]),
                mlpNorm: try vector(p + "post_attention_layernorm.weight"),
                gateUp: try stack([gate, up], source: source),
                down: try tensor(p + "mlp.down_proj.weight", [h, c.intermediateSize])))
        }
        self.layers = layers
        norm = try vector("norm.weight")
        lmHead = c.tieWordEmbeddings ? embedding : try tensor("lm_head.weight", [c.vocabularySize, h])
        do {
            rotary = try RotaryTables(positions: Array(0..<c.maxPositions), inverseFrequencies: c.inverseFrequencies())
        } catch {
            throw .malformed(file: source, cause: "rotary tables: \(error)")
        }
    }

    /// Loads the decoder of a Hugging Face model directory (config.json + safetensors).
    public convenience init(directory: String) throws(VLMError) {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let configuration = try LlamaConfiguration(configFile: configPath)
        let store: WeightStore
        do { store = try WeightStore(directory: directory) } catch { throw .weights(error) }
        // LlamaForCausalLM keeps the decoder under "model.", SmolVLM under "model.text_model.".
        let prefixes = ["model.text_model.", "model.language_model.", "model.", "language_model.model.", ""]
        guard let prefix = prefixes.first(where: { store.contains($0 + "embed_tokens.weight") }) else {
            throw .badTensor(file: directory, tensor: "model.embed_tokens.weight", cause: "missing (no decoder embeddings under any known prefix)")
        }
        try self.init(configuration: configuration, source: directory) { (name, shape) throws(VLMError) -> Matrix in
            let full = name == "lm_head.weight" ? (store.contains("lm_head.weight") ? name : prefix + name) : prefix + name
            do throws(WeightsError) {
                return try store.matrix(full, shape: shape)
            } catch {
                throw .weights(error)
            }
        }
    }

    /// Loads the decoder of a llama-architecture GGUF; quantized tensors are dequantized here.
    public convenience init(gguf: GGUFFile) throws(VLMError) {
        let configuration = try LlamaConfiguration(gguf: gguf)
        let c = configuration
        try self.init(configuration: configuration, source: gguf.path) { (name, shape) throws(VLMError) -> Matrix in
            let ggufName = Self.ggufName(name)
            guard let info = gguf.tensors[ggufName] else {
                throw .badTensor(file: gguf.path, tensor: ggufName, cause: "missing (for \(name))")
            }
            let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last ?? 0
            guard info.count == rows * cols, info.dimensions[0] == cols else {
                throw .badTensor(file: gguf.path, tensor: ggufName, cause: "dimensions \(info.dimensions), expected \(shape.reversed())")
            }
            var m = try gguf.matrix(ggufName)
            if name.hasSuffix("q_proj.weight") { m = unpermuteRotaryRows(m, heads: c.heads) }
            if name.hasSuffix("k_proj.weight") { m = unpermuteRotaryRows(m, heads: c.kvHeads) }
            return m
        }
    }

    static func ggufName(_ hf: String) -> String {
        switch hf {
        case "embed_tokens.weight": return "token_embd.weight"
        case "norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".", maxSplits: 2).map(String.init)  // layers, N, rest
        guard parts.count == 3, parts[0] == "layers" else { return hf }
        let map = ["input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                   "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                   "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"]
        return "blk.\(parts[1]).\(map[parts[2]] ?? parts[2])"
    }

    /// Token embeddings of `ids`, [ids.count, hidden] (the input a prefill takes; visual features
    /// may replace rows before the prefill).
    public func embed(_ ids: [Int]) throws(VLMError) -> Matrix {
        let h = configuration.hiddenSize
        var out = Matrix(rows: ids.count, cols: h)
        for (r, id) in ids.enumerated() {
            guard id >= 0, id < embedding.rows else { throw .tokenOutOfRange(id: id, vocabulary: embedding.rows) }
            out.storage.withUnsafeMutableBufferPointer { dst in
                embedding.storage.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + r * h).update(from: src.baseAddress! + id * h, count: h)
                }
            }
        }
        return out
    }

    /// Token embeddings with rows replaced: `features` row i goes to row `rows[i]` (e.g. the
    /// positions of `<image>` tokens receiving the connector's output).
    public func embed(_ ids: [Int], injecting features: Matrix, at rows: [Int]) throws(VLMError) -> Matrix {
        var out = try embed(ids)
        guard features.cols == out.cols, features.rows == rows.count else {
            throw .invalidArgument(name: "injected embeddings", cause: "\(features.rows)x\(features.cols) for \(rows.count) rows of width \(out.cols)")
        }
        for (i, r) in rows.enumerated() {
            guard r >= 0, r < out.rows else {
                throw .invalidArgument(name: "injected embeddings", cause: "row \(r) outside the \(out.rows) prompt rows")
            }
            for c in 0..<out.cols { out[r, c] = features[i, c] }
        }
        return out
    }
}

private func stack(_ parts: [Matrix], source: String) throws(VLMError) -> Matrix {
    var storage: [Float] = []
    storage.reserveCapacity(parts.reduce(0) { $0 + $1.count })
    for p in parts { storage += p.storage }
    do {
        return try Matrix(rows: parts.reduce(0) { $0 + $1.rows }, cols: parts[0].cols, storage: storage)
    } catch {
        throw .malformed(file: source, cause: "stacking projections: \(error)")
    }
}

/// Undoes llama.cpp's Q/K permutation. convert_hf_to_gguf reorders each head's rows from
/// transformers' halves layout (rotate_half pairs i and i + d/2) to interleaved pairs (2i, 2i + 1):
/// GGUF row h·d + 2i + j holds transformers row h·d + j·d/2 + i.
func unpermuteRotaryRows(_ m: Matrix, heads: Int) -> Matrix {
    let d = m.rows / heads, half = d / 2, cols = m.cols
    var out = Matrix(rows: m.rows, cols: cols)
    m.storage.withUnsafeBufferPointer { src in
        out.storage.withUnsafeMutableBufferPointer { dst in
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let from = h * d + 2 * i + j, to = h * d + j * half + i
                        (dst.baseAddress! + to * cols).update(from: src.baseAddress! + from * cols, count: cols)
                    }
                }
            }
        }
    }
    return out
}

extension LlamaModel {
    /// A model of the given shape with random weights (uniform, ±0.05; norms 1), for benchmarks.
    public convenience init(randomWeights configuration: LlamaConfiguration, seed: UInt64) throws(VLMError) {
        var state = seed
        try self.init(configuration: configuration, source: "random weights") { (name, shape) throws(VLMError) -> Matrix in
            let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last ?? 0
            var m = Matrix(rows: rows, cols: cols)
            if name.hasSuffix("norm.weight") {
                for i in 0..<m.count { m.storage[i] = 1 }
                return m
            }
            m.storage.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count {
                    // SplitMix64 step, inlined: this fills ~135 M values.
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    p[i] = (Float(z >> 40) / Float(1 << 24) - 0.5) * 0.1
                }
            }
            return m
        }
    }
}
