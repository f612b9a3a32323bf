// The Llama / SmolLM2 decoder (DecoderWeights runs it) and where its weights come from: a Hugging
// Face directory (LlamaForCausalLM: `model.*`; SmolVLM / Idefics3: `model.text_model.*`, `lm_head.*`
// at the top) or a GGUF (token_embd, blk.N.attn_q …, output_norm, output), where llama.cpp's
// conversion permuted the rows of Q and K (see `rotaryRowOrder`).
import Foundation
import Prune
import Tensor

public final class LlamaModel: DecoderModel {
    public let configuration: LlamaConfiguration
    public let decoder: DecoderWeights

    /// Assembles a model from tensors fetched by their Hugging Face names (without prefix).
    init(configuration c: LlamaConfiguration, source: String, precision: WeightPrecision,
         tensor: (_ name: String, _ shape: [Int]) throws(VLMError) -> LoadedTensor) throws(VLMError) {
        configuration = c
        decoder = try DecoderWeights(shape: c.decoderShape, qkvBias: false, tiedHead: c.tieWordEmbeddings, precision: precision,
                                     inverseFrequencies: c.inverseFrequencies(), axisOfFrequency: nil, source: source, tensor: tensor)
    }

    /// Loads the decoder of a Hugging Face model directory (config.json + safetensors).
    public convenience init(directory: String, precision: WeightPrecision = .stored) throws(VLMError) {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let configuration = try LlamaConfiguration(configFile: configPath)
        let store: WeightStore
        do { store = try WeightStore(directory: directory) } catch { throw .weights(error) }
        // LLaVA's decoder sits under "model.language_model." (transformers 5) or "language_model.model." (llava-hf).
        guard let prefix = DecoderWeights.textPrefix(in: store) else {
            throw .badTensor(file: directory, tensor: "model.embed_tokens.weight", cause: "missing (no decoder embeddings under any known prefix)")
        }
        let head = Self.headName(in: store, prefix: prefix)
        try self.init(configuration: configuration, source: directory, precision: precision) { (name, shape) throws(VLMError) -> LoadedTensor in
            let full = name == "lm_head.weight" ? head : prefix + name
            do throws(WeightsError) {
                return LoadedTensor(matrix: try store.matrix(full, shape: shape), storedAsBF16: store.entry(full)?.dtype == "BF16")
            } catch {
                throw .weights(error)
            }
        }
    }

    /// Where lm_head sits: at the top (transformers 5), beside the decoder's module (llava-hf's
    /// `language_model.lm_head` next to `language_model.model.`), or under the prefix.
    public static func headName(in store: WeightStore, prefix: String) -> String {
        let beside = prefix.hasSuffix(".model.") ? String(prefix.dropLast("model.".count)) + "lm_head.weight" : nil
        return ["lm_head.weight", beside, prefix + "lm_head.weight"].compactMap { $0 }.first(where: store.contains) ?? "lm_head.weight"
    }

    /// Loads the decoder of a llama-architecture GGUF. Matrices are handed over in the file's block
    /// format, read in place (Q and K rows reordered into a copy); `precision` decides how they are held.
    public convenience init(gguf: GGUFFile, precision: WeightPrecision = .stored) throws(VLMError) {
        let configuration = try LlamaConfiguration(gguf: gguf)
        let c = configuration
        try self.init(configuration: configuration, source: gguf.path, precision: precision) { (name, shape) throws(VLMError) -> LoadedTensor in
            try Self.ggufTensor(gguf, name: name, shape: shape, rotaryHeads: (c.heads, c.kvHeads))
        }
    }

    /// The decoder tensor `name` (transformers' name, no prefix) of a GGUF, of transformers' `shape`:
    /// matrices in their block format, read in place. With `rotaryHeads` (llama's conversion, which
    /// permuted Q and K; Qwen2's does not) Q's and K's rows are put back in transformers' order.
    static func ggufTensor(_ gguf: GGUFFile, name: String, shape: [Int],
                           rotaryHeads: (q: Int, k: Int)?) throws(VLMError) -> LoadedTensor {
        let ggufName = Self.ggufName(name)
        guard let info = gguf.tensors[ggufName] else {
            throw .badTensor(file: gguf.path, tensor: ggufName, cause: "missing (for \(name))")
        }
        let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last ?? 0
        guard info.count == rows * cols, info.dimensions[0] == cols else {
            throw .badTensor(file: gguf.path, tensor: ggufName, cause: "dimensions \(info.dimensions), expected \(shape.reversed())")
        }
        guard shape.count == 2 else { return LoadedTensor(matrix: try gguf.matrix(ggufName), storedAsBF16: info.type == .bf16) }
        var order: [Int]?
        if let heads = rotaryHeads, name.hasSuffix("q_proj.weight") { order = rotaryRowOrder(rows: rows, heads: heads.q) }
        if let heads = rotaryHeads, name.hasSuffix("k_proj.weight") { order = rotaryRowOrder(rows: rows, heads: heads.k) }
        // An embedding beside its own output matrix is only read a row per token.
        let rowsOnly = name == "embed_tokens.weight" && gguf.tensors[Self.ggufName("lm_head.weight")] != nil
        return .stored(try gguf.weightMatrix(ggufName, rowOrder: order, rowsOnly: rowsOnly))
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
                   "mlp.down_proj.weight": "ffn_down.weight", "self_attn.q_proj.bias": "attn_q.bias",
                   "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias"]
        return "blk.\(parts[1]).\(map[parts[2]] ?? parts[2])"
    }
}

/// Undoes llama.cpp's Q/K permutation. convert_hf_to_gguf reorders each head's rows from
/// transformers' halves layout (rotate_half pairs i and i + d/2) to interleaved pairs (2i, 2i + 1):
/// GGUF row h·d + 2i + j holds transformers row h·d + j·d/2 + i. Returns, for each transformers
/// row, the GGUF row that holds it.
func rotaryRowOrder(rows: Int, heads: Int) -> [Int] {
    let d = rows / heads, half = d / 2
    var order = Array(0..<rows)
    for h in 0..<heads {
        for i in 0..<half {
            for j in 0..<2 { order[h * d + j * half + i] = h * d + 2 * i + j }
        }
    }
    return order
}

extension LlamaModel {
    /// A model of the given shape with random weights (uniform, ±0.05; norms 1), for benchmarks.
    public convenience init(randomWeights configuration: LlamaConfiguration, seed: UInt64,
                            precision: WeightPrecision = .float32) throws(VLMError) {
        var random = SplitMix64(seed: seed)
        try self.init(configuration: configuration, source: "random weights", precision: precision) { (name, shape) throws(VLMError) -> LoadedTensor in
            let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last ?? 0
            var m = Matrix(rows: rows, cols: cols)
            if name.hasSuffix("norm.weight") {
                for i in 0..<m.count { m.storage[i] = 1 }
                return LoadedTensor(matrix: m, storedAsBF16: false)
            }
            m.storage.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = (random.nextUnit() - 0.5) * 0.1 }
            }
            return LoadedTensor(matrix: m, storedAsBF16: false)
        }
    }
}
