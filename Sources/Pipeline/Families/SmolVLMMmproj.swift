// SmolVLM2 / Idefics3 from llama.cpp's GGUF pair: the mmproj of `clip.projector_type` "idefics3"
// (convert_hf_to_gguf.py's SmolVLMModel) holds the SigLIP tower and the connector's projection; the
// text GGUF (architecture "llama") the SmolLM2 decoder, its tokenizer and chat template.
//
// clip.* → config.json: embedding_length → vision hidden_size, feed_forward_length →
// intermediate_size, block_count → num_hidden_layers, attention.head_count → num_attention_heads,
// image_size and patch_size as named, attention.layer_norm_epsilon → layer_norm_eps,
// projector.scale_factor → scale_factor, projection_dim → text hidden_size. use_gelu is ggml_gelu, the
// tanh form (SigLIP's gelu_pytorch_tanh). Every frame is resized to image_size square (the video
// processor's max_image_size.longest_edge, which the converter does not record apart: it is the tower's
// image_size in SmolVLM2); image_mean / image_std from the file.
// Tensors are stored as transformers holds them (no permutation; the patch embedding's convolution
// is [hidden, channels, patch, patch]): only the names differ.
import Foundation
import Tensor
import Vision
import VLM

extension SmolVLMVisionModel {
    /// The encoder of an idefics3 mmproj.
    static func load(mmproj m: MmprojFile, precision: EncoderPrecision) throws -> SmolVLMVisionModel {
        var c = SmolVLMConfiguration()
        c.modelType = "smolvlm"
        try m.readViTSizes(into: &c.visionConfig)
        c.visionConfig.numHiddenLayers = try m.size("clip.vision.block_count", .layers)
        guard m.gguf.metadata["clip.use_gelu"]?.boolValue == true else {
            throw VLMError.unsupported(file: m.path, feature: "an idefics3 projector without clip.use_gelu (SigLIP's MLP is GELU)")
        }
        c.visionConfig.hiddenAct = "gelu_pytorch_tanh"
        c.scaleFactor = try m.size("clip.vision.projector.scale_factor", .factor)
        c.textConfig.hiddenSize = try m.size("clip.vision.projection_dim", .width)
        guard let patch = m.gguf.tensors["v.patch_embd.weight"], patch.dimensions.count == 4 else {
            throw VLMError.badTensor(file: m.path, tensor: "v.patch_embd.weight", cause: "missing or not a 4-D convolution")
        }
        c.visionConfig.numChannels = patch.dimensions[2]
        let v = c.visionConfig
        guard v.hiddenSize % v.numAttentionHeads == 0, v.imageSize % v.patchSize == 0,
              (v.imageSize / v.patchSize) % c.scaleFactor == 0 else {
            throw VLMError.malformed(file: m.path, cause: "clip.vision.embedding_length \(v.hiddenSize) / head_count \(v.numAttentionHeads), image_size \(v.imageSize) / patch_size \(v.patchSize) / projector.scale_factor \(c.scaleFactor) do not divide")
        }
        var pre = SmolVLMPreprocessorConfiguration()
        (pre.imageMean, pre.imageStd) = try m.imageNormalization()
        pre.maxImageSize = ["longest_edge": v.imageSize]
        pre.size = ["longest_edge": try m.optionalSize("clip.vision.preproc_image_size", .imageSide) ?? v.imageSize]
        // The video processor's first resize: the longest edge to video_sampling.video_size, which
        // the converter does not record; SmolVLM2's checkpoints set it to the encoder's side (512).
        pre.videoResize = ["longest_edge": v.imageSize]
        return try SmolVLMVisionModel(configuration: c, preprocessing: pre, prefix: "", precision: precision) { (name, shape) throws(WeightsError) in
            try m.tensor(Self.mmprojName(name), shape: shape)
        }
    }

    /// llama.cpp's name of a tensor the encoder reads (prefix "").
    static func mmprojName(_ name: String) -> String {
        let fixed = ["vision_model.embeddings.patch_embedding.weight": "v.patch_embd.weight",
                     "vision_model.embeddings.patch_embedding.bias": "v.patch_embd.bias",
                     "vision_model.embeddings.position_embedding.weight": "v.position_embd.weight",
                     "vision_model.post_layernorm.weight": "v.post_ln.weight",
                     "vision_model.post_layernorm.bias": "v.post_ln.bias",
                     "connector.modality_projection.proj.weight": "mm.model.fc.weight"]
        if let gguf = fixed[name] { return gguf }
        let encoder = "vision_model.encoder."
        if name.hasPrefix(encoder), let gguf = MmprojFile.layerTensorName(String(name.dropFirst(encoder.count))) { return gguf }
        return name
    }
}

extension VideoQuestionAnswering {
    /// The language side from the text GGUF: decoder, tokenizer and chat template; the image
    /// token is the tokenizer's `<image>` (the GGUF carries no image_token_id).
    static func load(text: String, precision: WeightPrecision) throws -> VideoQuestionAnswering {
        let language = try LanguageModel(path: text, precision: precision)
        guard let id = language.tokenizer.id(of: SmolVLMVideoPrompt.imageToken) else {
            throw VLMError.missingField(file: text, field: "tokenizer.ggml.tokens entry \(SmolVLMVideoPrompt.imageToken)")
        }
        return try VideoQuestionAnswering(language: language, imageTokenID: id)
    }
}
