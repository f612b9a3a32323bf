// LLaVA-1.5 and LLaVA-NeXT from llama.cpp's GGUF pair: the mmproj of `clip.projector_type` "mlp", as
// llama.cpp's legacy scripts make it (tools/mtmd/legacy-models: llava_surgery_v2.py, then
// convert_image_encoder_to_gguf.py; convert_hf_to_gguf.py --mmproj takes LLaVA only with pixtral
// towers), holds the CLIP tower and the two-layer projector; the text GGUF (architecture "llama",
// vicuna or mistral) the decoder, its tokenizer and chat template.
//
// What the legacy converter wrote, read back here (tools/make_llava_mmproj_fixtures.py runs it):
// - names: v.class_embd, v.patch_embd.weight (no bias), v.position_embd.weight, v.pre_ln.*,
//   v.blk.N.{ln1, attn_q, attn_k, attn_v, attn_out, ln2}.*, and the MLP's fc1 / fc2 under
//   ffn_down / ffn_up — swapped, which clip.cpp undoes when ffn_down's input width is the tower's
//   (the same test here); the projector's linear_1 / linear_2 as mm.0 / mm.2 (mm.3 present is
//   Yi-VL's normed projector, refused); LLaVA-NeXT's image_newline as model.image_newline. No
//   post_layernorm: LLaVA reads an inner layer.
// - depth: the tower is cut where LLaVA reads it. Without clip.vision.feature_layer the converter
//   dropped the last layer (vision_feature_layer −2): the file's block_count layers are all run and
//   the original tower had one more. With clip.vision.feature_layer [k] (non-negative hidden_states
//   indices) it kept k layers. clip.cpp (models/llava.cpp) runs one layer fewer than block_count in
//   the first case (llama.cpp issue 25817); the layer LLaVA was trained on, and the safetensors
//   path's, is the one run here.
// - clip.* → config.json: embedding_length → hidden_size, feed_forward_length → intermediate_size,
//   attention.head_count → num_attention_heads, image_size, patch_size, layer_norm_epsilon →
//   layer_norm_eps; use_gelu → hidden_act "gelu" (the converter writes it for hidden_act == "gelu"),
//   else CLIP's quick_gelu (what clip.cpp runs when neither use_gelu nor use_silu is set). The
//   language model's width is mm.0's output (clip.vision.projection_dim is CLIP's own projection,
//   768 for ViT-L/14, not the decoder's). The projector's activation is not recorded: LLaVA's is
//   GELU (erf; clip.cpp uses ggml_gelu's tanh form).
// - LLaVA-NeXT: clip.vision.image_grid_pinpoints, flattened [height, width] pairs as the
//   checkpoint's config lists them (clip.cpp reads each pair as width, height; every released
//   pinpoint list holds each pair both ways round), and mm_patch_merge_type "spatial_unpad"
//   (transformers' packing: crops un-padded, image_newline after each row).
// - preprocessing: image_mean / image_std from the file, CLIP's shortest-edge resize to image_size
//   and centre crop as the checkpoint's processor does (clip.cpp pads LLaVA-1.5 frames to a square
//   instead, as the original LLaVA's "pad" aspect mode).
// Weights: the converter stores the patch embedding and the projector's matrices in F16 even with
// --use-f32, the rest in F32 (--use-f32) or every 2-D weight in F16; all are widened to F32 here.
import Foundation
import Tensor
import Vision
import VLM

extension LlavaVisionModel {
    /// Whether the mmproj is LLaVA-NeXT's (AnyRes pinpoints recorded).
    static func isAnyRes(_ m: MmprojFile) -> Bool { m.gguf.metadata["clip.vision.image_grid_pinpoints"] != nil }

    /// The encoder of an "mlp" mmproj (LLaVA-1.5's single view; LlavaNextVisionModel wraps it for AnyRes).
    static func load(mmproj m: MmprojFile, precision: EncoderPrecision) throws -> LlavaVisionModel {
        let (c, pre) = try configuration(mmproj: m)
        let swapped = try ffnSwapped(m, hidden: c.visionConfig.hiddenSize)
        do {
            return try LlavaVisionModel(configuration: c, preprocessing: pre, towerPrefix: "", projectorPrefix: "",
                                        precision: precision) { (name, shape) throws(WeightsError) in
                guard let source = mmprojName(name, ffnSwapped: swapped) else { throw .missingTensor(name: name, file: m.path) }
                return try m.tensor(source, shape: shape)
            }
        } catch let VisionError.invalidConfiguration(_, field, cause) {
            throw VLMError.malformed(file: m.path, cause: "\(field): \(cause)")
        }
    }

    /// The LLaVA configuration and CLIP preprocessing an mmproj describes, every size checked.
    static func configuration(mmproj m: MmprojFile) throws -> (LlavaConfiguration, CLIPPreprocessorConfiguration) {
        var c = LlavaConfiguration()
        c.modelType = isAnyRes(m) ? "llava_next" : "llava"
        var v = CLIPVisionConfiguration()
        try m.readViTSizes(into: &v)
        if m.gguf.metadata["clip.use_silu"]?.boolValue == true {
            throw VLMError.unsupported(file: m.path, feature: "clip.use_silu on an mlp projector (CLIP's MLP is GELU or quick_gelu)")
        }
        v.hiddenAct = m.gguf.metadata["clip.use_gelu"]?.boolValue == true ? "gelu" : "quick_gelu"
        let blocks = try m.size("clip.vision.block_count", .layers)
        if let layers = m.gguf.metadata["clip.vision.feature_layer"] {
            guard let list = layers.arrayValue, list.count == 1, let k = list[0].intValue else {
                throw VLMError.unsupported(file: m.path, feature: "clip.vision.feature_layer \(layers) (one layer only; several are concatenated)")
            }
            guard (1...blocks).contains(k) else {
                throw VLMError.malformed(file: m.path, cause: "clip.vision.feature_layer \(k) is not a layer output of the \(blocks) layers held (clip.vision.block_count)")
            }
            v.numHiddenLayers = blocks
            c.visionFeatureLayer = k
        } else {
            // The converter dropped the last layer: hidden_states[−2] of the original tower is the
            // output of every layer held.
            v.numHiddenLayers = blocks + 1
            c.visionFeatureLayer = -2
        }
        guard let patch = m.gguf.tensors["v.patch_embd.weight"], patch.dimensions.count == 4 else {
            throw VLMError.badTensor(file: m.path, tensor: "v.patch_embd.weight", cause: "missing or not a 4-D convolution")
        }
        v.numChannels = patch.dimensions[2]
        c.visionConfig = v
        guard m.gguf.tensors["mm.2.weight"] != nil else {
            throw VLMError.badTensor(file: m.path, tensor: "mm.2.weight", cause: "missing (the projector's second linear)")
        }
        guard m.gguf.tensors["mm.3.weight"] == nil else {
            throw VLMError.unsupported(file: m.path, feature: "a normed mlp projector (mm.1 / mm.3 / mm.4, Yi-VL's)")
        }
        c.textHiddenSize = try outputWidth(m).width
        c.multimodalProjectorBias = m.gguf.tensors["mm.0.bias"] != nil
        c.projectorHiddenAct = "gelu"
        c.visionFeatureSelectStrategy = "default"
        if c.modelType == "llava_next" {
            guard let flat = m.gguf.metadata["clip.vision.image_grid_pinpoints"]?.arrayValue?.map(\.intValue),
                  !flat.isEmpty, flat.count % 2 == 0, flat.count <= 2 * 64 else {
                throw VLMError.malformed(file: m.path, cause: "clip.vision.image_grid_pinpoints: expected up to 64 (height, width) pairs of integers")
            }
            let side = SizeKind.imageSide.bounds
            let values = flat.compactMap { $0 }
            guard values.count == flat.count, values.allSatisfy(side.contains) else {
                throw VLMError.malformed(file: m.path, cause: "clip.vision.image_grid_pinpoints: \(flat.map { $0.map { String($0) } ?? "?" }) has a side outside \(side)")
            }
            c.imageGridPinpoints = stride(from: 0, to: values.count, by: 2).map { [values[$0], values[$0 + 1]] }
            let merge = m.gguf.string("clip.vision.mm_patch_merge_type") ?? "flat"
            guard merge == "spatial_unpad" else {
                throw VLMError.unsupported(file: m.path, feature: "clip.vision.mm_patch_merge_type '\(merge)' with pinpoints (LLaVA-NeXT's is spatial_unpad)")
            }
            guard let newline = m.gguf.tensors["model.image_newline"], newline.dimensions.filter({ $0 != 1 }) == [c.textHiddenSize] else {
                throw VLMError.badTensor(file: m.path, tensor: "model.image_newline", cause: "missing or not \(c.textHiddenSize) values (LLaVA-NeXT closes each row of crops with it)")
            }
        }
        var pre = CLIPPreprocessorConfiguration()
        pre.shortestEdge = v.imageSize
        pre.cropHeight = v.imageSize
        pre.cropWidth = v.imageSize
        (pre.imageMean, pre.imageStd) = try m.imageNormalization()
        return (c, pre)
    }

    /// The language model's width: mm.0.weight's output dimension (outermost in the file).
    static func outputWidth(_ m: MmprojFile) throws -> (width: Int, field: String) {
        guard let first = m.gguf.tensors["mm.0.weight"], first.dimensions.count == 2 else {
            throw VLMError.badTensor(file: m.path, tensor: "mm.0.weight", cause: "missing or not a matrix (the projector's first linear)")
        }
        let width = first.dimensions[1]
        if let (_, cause) = SizeLimits.violation([("mm.0.weight", width, .width)]) {
            throw VLMError.badTensor(file: m.path, tensor: "mm.0.weight", cause: cause)
        }
        return (width, "mm.0.weight's output width")
    }

    /// clip.cpp's test for the legacy converter's fc1/fc2 naming: ffn_down whose input is the
    /// tower's width is really fc1 (the expansion).
    static func ffnSwapped(_ m: MmprojFile, hidden: Int) throws -> Bool {
        guard let down = m.gguf.tensors["v.blk.0.ffn_down.weight"], down.dimensions.count == 2 else {
            throw VLMError.badTensor(file: m.path, tensor: "v.blk.0.ffn_down.weight", cause: "missing or not a matrix")
        }
        return down.dimensions[0] == hidden
    }

    /// llama.cpp's name of a tensor the encoder reads (tower and projector prefixes "").
    static func mmprojName(_ name: String, ffnSwapped: Bool) -> String? {
        let fixed = ["embeddings.class_embedding": "v.class_embd", "embeddings.patch_embedding.weight": "v.patch_embd.weight",
                     "embeddings.position_embedding.weight": "v.position_embd.weight",
                     "pre_layrnorm.weight": "v.pre_ln.weight", "pre_layrnorm.bias": "v.pre_ln.bias",
                     "linear_1.weight": "mm.0.weight", "linear_1.bias": "mm.0.bias",
                     "linear_2.weight": "mm.2.weight", "linear_2.bias": "mm.2.bias"]
        if let gguf = fixed[name] { return gguf }
        let encoder = "encoder."
        guard name.hasPrefix(encoder), let gguf = MmprojFile.layerTensorName(String(name.dropFirst(encoder.count))) else { return nil }
        guard ffnSwapped else { return gguf }
        if gguf.contains(".ffn_up.") { return gguf.replacingOccurrences(of: ".ffn_up.", with: ".ffn_down.") }
        if gguf.contains(".ffn_down.") { return gguf.replacingOccurrences(of: ".ffn_down.", with: ".ffn_up.") }
        return gguf
    }
}

extension LlavaNextVisionModel {
    /// The AnyRes encoder of an "mlp" mmproj with pinpoints.
    static func load(mmproj m: MmprojFile, precision: EncoderPrecision) throws -> LlavaNextVisionModel {
        do { return try LlavaNextVisionModel(try LlavaVisionModel.load(mmproj: m, precision: precision)) } catch let VisionError.invalidConfiguration(_, field, cause) {
            throw VLMError.malformed(file: m.path, cause: "\(field): \(cause)")
        }
    }
}

extension LlavaVideoAnswering {
    /// The language side from the text GGUF (decoder, tokenizer, chat template), the placeholder the
    /// tokenizer's `<image>` (the GGUF carries no image_token_id); LLaVA-NeXT's image_newline from the mmproj.
    static func load(text: String, mmproj m: MmprojFile, precision: WeightPrecision) throws -> LlavaVideoAnswering {
        let language = try LanguageModel(path: text, precision: precision)
        guard let id = language.tokenizer.id(of: LlavaVideoPrompt.imageToken) else {
            throw VLMError.missingField(file: text, field: "tokenizer.ggml.tokens entry \(LlavaVideoPrompt.imageToken)")
        }
        var newline: [Float]? = nil
        if LlavaVisionModel.isAnyRes(m) {
            let width = try LlavaVisionModel.outputWidth(m).width
            newline = try m.tensor("model.image_newline", shape: [width]).storage
        }
        return try LlavaVideoAnswering(language: language, layout: .images, placeholderID: id, imageNewline: newline)
    }
}
