// The Qwen2 decoder of Qwen2.5-VL: token embeddings → N × (RMSNorm → grouped-query attention with
// biases on q/k/v and multimodal RoPE → residual → RMSNorm → SwiGLU → residual) → RMSNorm → lm_head
// (tied to the embeddings when the config says so).
//
// M-RoPE: every row carries three positions (t, h, w). Frequency i of a head's half-dimension takes
// its angle from one axis, chosen by mrope_section ([16, 24, 24] for 3B: frequencies 0..<16 from t,
// 16..<40 from h, 40..<64 from w); both halves of the head rotate by that angle (rotate_half
// layout). Text rows have t = h = w, which is plain 1-D RoPE.
//
// DecoderWeights holds it (q/k/v biases; BF16 checkpoints stay BF16 by default) and DecoderSession
// runs it, as it runs Llama.
import Foundation
import Prune
import Tensor

public final class Qwen2Model: DecoderModel {
    public let configuration: Qwen2Configuration
    public let decoder: DecoderWeights

    /// M-RoPE: inverse frequency i reads the axis mrope_section assigns it.
    static func rotary(_ c: Qwen2Configuration) -> (inverse: [Float], axes: [Int]) {
        var axes: [Int] = []
        for (axis, n) in c.mropeSection.enumerated() { axes += Array(repeating: axis, count: n) }
        return (RotaryTables.inverseFrequencies(dimension: c.headDimension, theta: c.ropeTheta), axes)
    }

    /// Loads the decoder of a Qwen2.5-VL directory (config.json + safetensors).
    public convenience init(directory: String, precision: WeightPrecision = .stored) throws(VLMError) {
        let configuration = try Qwen2Configuration(configFile: (directory as NSString).appendingPathComponent("config.json"))
        let store: WeightStore
        do { store = try WeightStore(directory: directory) } catch { throw .weights(error) }
        try self.init(configuration: configuration, weights: store, precision: precision)
    }

    public convenience init(configuration c: Qwen2Configuration, weights store: WeightStore,
                            precision: WeightPrecision = .stored) throws(VLMError) {
        guard let prefix = DecoderWeights.textPrefix(in: store) else {
            throw .badTensor(file: store.directory, tensor: "model.embed_tokens.weight", cause: "missing (no decoder embeddings under any known prefix)")
        }
        let tied = c.tieWordEmbeddings || !store.contains("lm_head.weight")
        if tied && !c.tieWordEmbeddings {
            throw .badTensor(file: store.directory, tensor: "lm_head.weight", cause: "missing and tie_word_embeddings is false")
        }
        let rotary = Self.rotary(c)
        let decoder = try DecoderWeights(shape: c.decoderShape, qkvBias: true, tiedHead: tied, precision: precision,
                                         inverseFrequencies: rotary.inverse, axisOfFrequency: rotary.axes,
                                         source: store.directory) { (name, shape) throws(VLMError) -> LoadedTensor in
            let full = name == "lm_head.weight" ? name : prefix + name
            do throws(WeightsError) {
                return LoadedTensor(matrix: try store.matrix(full, shape: shape), storedAsBF16: store.entry(full)?.dtype == "BF16")
            } catch {
                throw .weights(error)
            }
        }
        self.init(configuration: c, decoder: decoder)
    }

    /// Loads the decoder of a Qwen2-VL-architecture GGUF (`general.architecture` "qwen2vl", as
    /// convert_hf_to_gguf.py writes Qwen2.5-VL's text model): the llama names plus q/k/v biases, Q and
    /// K not permuted; matrices in their block format, read in place.
    /// `configuration`: the file's, completed by the caller (special tokens' ids); read from it when nil.
    public convenience init(gguf: GGUFFile, configuration: Qwen2Configuration? = nil,
                            precision: WeightPrecision = .stored) throws(VLMError) {
        let c: Qwen2Configuration
        if let configuration { c = configuration } else { c = try Qwen2Configuration(gguf: gguf) }
        let rotary = Self.rotary(c)
        let decoder = try DecoderWeights(shape: c.decoderShape, qkvBias: true, tiedHead: c.tieWordEmbeddings, precision: precision,
                                         inverseFrequencies: rotary.inverse, axisOfFrequency: rotary.axes,
                                         source: gguf.path) { (name, shape) throws(VLMError) -> LoadedTensor in
            try LlamaModel.ggufTensor(gguf, name: name, shape: shape, rotaryHeads: nil)
        }
        self.init(configuration: c, decoder: decoder)
    }

    init(configuration: Qwen2Configuration, decoder: DecoderWeights) {
        self.configuration = configuration
        self.decoder = decoder
    }

    /// Random weights at the given shapes (benchmarks): every layer shares one layer's weights, so
    /// memory is one layer plus the embeddings whatever the depth.
    public convenience init(randomShapes c: Qwen2Configuration, seed: UInt64 = 1, precision: WeightPrecision = .stored) {
        var generator = SplitMix64(seed: seed)
        func next() -> Float { generator.nextUnit() - 0.5 }
        func random(_ rows: Int, _ cols: Int, _ scale: Float) -> WeightMatrix {
            var m = Matrix(rows: rows, cols: cols)
            for i in 0..<m.storage.count { m.storage[i] = next() * scale }
            return WeightMatrix(m, bf16: precision.holdsBF16(storedAsBF16: true))
        }
        let h = c.hiddenSize, d = c.headDimension, s = 3.4 / Float(h).squareRoot()
        let layer = DecoderWeights.Layer(attentionNorm: Array(repeating: 1, count: h), qkv: random((c.heads + 2 * c.kvHeads) * d, h, s),
                          qkvBias: Array(repeating: 0.01, count: (c.heads + 2 * c.kvHeads) * d),
                          output: random(h, c.heads * d, s), mlpNorm: Array(repeating: 1, count: h),
                          gateUp: random(2 * c.intermediateSize, h, s),
                          down: random(h, c.intermediateSize, 3.4 / Float(c.intermediateSize).squareRoot()))
        let rotary = Self.rotary(c)
        self.init(configuration: c, decoder: DecoderWeights(
            shape: c.decoderShape, embedding: random(c.vocabularySize, h, 1), layers: Array(repeating: layer, count: c.layers),
            norm: Array(repeating: 1, count: h), lmHead: nil, inverseFrequencies: rotary.inverse, axisOfFrequency: rotary.axes))
    }
}
