// What a SmolVLM model directory holds, without loading its weights: configuration, tensor counts
// by part and dtype, and what is missing or misshapen against what the model reads.
import Foundation
import Tensor

public struct ModelInspection: Sendable {
    public var directory: String
    public var configuration: SmolVLMConfiguration
    /// frame side the encoder takes, from preprocessor_config.json (or the vision image_size).
    public var frameSide: Int
    /// Parameters per part: "vision", "connector", "text", "lm_head", "other".
    public var parameters: [String: Int]
    /// Tensor count per stored dtype.
    public var dtypes: [String: Int]
    /// Expected tensors absent from the checkpoint.
    public var missingTensors: [String]
    /// Tensors present with another shape: name, expected, found.
    public var misshapenTensors: [(name: String, expected: [Int], found: [Int])]
    /// Files of a complete model directory that are absent.
    public var missingFiles: [String]

    public var totalParameters: Int { parameters.values.reduce(0, +) }

    /// The token grid of a frame after the connector.
    public var grid: String {
        let side = frameSide / max(1, configuration.visionConfig.patchSize) / max(1, configuration.scaleFactor)
        return "\(side)x\(side)"
    }
}

extension SmolVLMVisionModel {
    /// The names and shapes of the text side (Llama / SmolLM2) as SmolVLM checkpoints store them.
    public static func expectedTextTensors(_ config: SmolVLMConfiguration, prefix: String = "model.") -> [(name: String, shape: [Int])] {
        let t = config.textConfig, d = t.hiddenSize, hd = t.headDimension
        let q = t.numAttentionHeads * hd, kv = t.keyValueHeads * hd
        let p = "\(prefix)text_model."
        var list: [(String, [Int])] = [("\(p)embed_tokens.weight", [t.vocabSize, d])]
        for l in 0..<t.numHiddenLayers {
            let n = "\(p)layers.\(l)."
            list += [("\(n)input_layernorm.weight", [d]), ("\(n)post_attention_layernorm.weight", [d]),
                     ("\(n)self_attn.q_proj.weight", [q, d]), ("\(n)self_attn.k_proj.weight", [kv, d]),
                     ("\(n)self_attn.v_proj.weight", [kv, d]), ("\(n)self_attn.o_proj.weight", [d, q]),
                     ("\(n)mlp.gate_proj.weight", [t.intermediateSize, d]), ("\(n)mlp.up_proj.weight", [t.intermediateSize, d]),
                     ("\(n)mlp.down_proj.weight", [d, t.intermediateSize])]
        }
        list.append(("\(p)norm.weight", [d]))
        if !(config.tieWordEmbeddings || t.tieWordEmbeddings) { list.append(("lm_head.weight", [t.vocabSize, d])) }
        return list
    }

    /// Inspects a model directory; throws only when config.json or a weights file cannot be read.
    public static func inspect(directory: String) throws(VisionError) -> ModelInspection {
        let config = try SmolVLMConfiguration.load(directory: directory)
        let preprocessing = try SmolVLMPreprocessorConfiguration.load(directory: directory)
        let weights: WeightStore
        do { weights = try WeightStore(directory: directory) } catch { throw .weights(error) }
        let prefix = prefix(of: weights)
        var parameters: [String: Int] = [:]
        var dtypes: [String: Int] = [:]
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            let part: String
            if name.contains("vision_model.") { part = "vision" } else if name.contains("connector.") { part = "connector" }
            else if name.contains("text_model.") { part = "text" } else if name.hasPrefix("lm_head.") { part = "lm_head" }
            else { part = "other" }
            parameters[part, default: 0] += entry.shape.reduce(1, *)
            dtypes[entry.dtype, default: 0] += 1
        }
        var missing: [String] = []
        var misshapen: [(String, [Int], [Int])] = []
        for (name, shape) in expectedTensors(config, prefix: prefix) + expectedTextTensors(config, prefix: prefix) {
            guard let entry = weights.entry(name) else { missing.append(name); continue }
            if entry.shape != shape { misshapen.append((name, shape, entry.shape)) }
        }
        let files = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
        let missingFiles = files.filter { !FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent($0)) }
        return ModelInspection(directory: directory, configuration: config,
                               frameSide: preprocessing?.frameSide ?? config.visionConfig.imageSize,
                               parameters: parameters, dtypes: dtypes, missingTensors: missing,
                               misshapenTensors: misshapen, missingFiles: missingFiles)
    }
}
