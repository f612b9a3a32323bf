// Qwen2.5-VL from llama.cpp's GGUF pair: the mmproj of `clip.projector_type` "qwen2.5vl_merger"
// (convert_hf_to_gguf.py's Qwen2VLVisionModel) holds the windowed ViT and the 2×2 merger; the text
// GGUF (architecture "qwen2vl") the Qwen2 decoder with M-RoPE, its tokenizer and chat template.
//
// What the converter changed, undone here so the encoder reads transformers' layout:
// - the Conv3d patch embedding [hidden, channels, 2, patch, patch] is split into two Conv2d's by
//   frame, v.patch_embd.weight (t = 0) and v.patch_embd.weight.1 (t = 1): interleaved back;
// - each block's fused qkv [3·hidden, hidden] (and its bias) is split into attn_q / attn_k / attn_v
//   (no permutation): stacked back.
// clip.* → config.json: embedding_length → hidden_size, feed_forward_length → intermediate_size,
// block_count → depth, attention.head_count → num_heads, patch_size, projection_dim →
// out_hidden_size, n_wa_pattern → fullatt_block_indexes (block i attends fully when (i + 1) is a
// multiple, as clip.cpp's qwen2vl graph decides), spatial_merge_size (2 when absent) and window_size
// (112 when absent: clip.cpp's default, and every released checkpoint's). Frames are resized as the
// video processor does, with its pixel bounds (128·28² … 768·28²) unless the file records
// clip.vision.image_min_pixels / image_max_pixels; image_mean / image_std from the file.
import Foundation
import Tensor
import Vision
import VLM

extension Qwen25VLVisionModel {
    /// The encoder of a qwen2.5vl_merger mmproj.
    static func load(mmproj m: MmprojFile, precision: EncoderPrecision) throws -> Qwen25VLVisionModel {
        var v = Qwen25VLVisionConfiguration()
        v.depth = try m.size("clip.vision.block_count", .layers)
        v.hiddenSize = try m.size("clip.vision.embedding_length", .width)
        v.intermediateSize = try m.size("clip.vision.feed_forward_length", .width)
        v.numHeads = try m.size("clip.vision.attention.head_count", .heads)
        v.patchSize = try m.size("clip.vision.patch_size", .patch)
        v.outHiddenSize = try m.size("clip.vision.projection_dim", .width)
        v.spatialMergeSize = try m.optionalSize("clip.vision.spatial_merge_size", .factor) ?? 2
        v.windowSize = try m.optionalSize("clip.vision.window_size", .imageSide) ?? 112
        v.tokensPerSecond = 2
        let pattern = try m.size("clip.vision.n_wa_pattern", .layers)
        v.fullattBlockIndexes = (0..<v.depth).filter { ($0 + 1) % pattern == 0 }
        guard m.gguf.metadata["clip.use_silu"]?.boolValue == true else {
            throw VLMError.unsupported(file: m.path, feature: "a qwen2.5vl_merger projector without clip.use_silu (the blocks' MLP is SiLU-gated)")
        }
        v.hiddenAct = "silu"
        guard let patch = m.gguf.tensors["v.patch_embd.weight"], patch.dimensions.count == 4 else {
            throw VLMError.badTensor(file: m.path, tensor: "v.patch_embd.weight", cause: "missing or not a 4-D convolution")
        }
        guard m.gguf.tensors["v.patch_embd.weight.1"] != nil else {
            throw VLMError.badTensor(file: m.path, tensor: "v.patch_embd.weight.1", cause: "missing (the second frame of the temporal patch)")
        }
        v.inChannels = patch.dimensions[2]
        v.temporalPatchSize = 2
        var pre = Qwen25VLPreprocessorConfiguration()
        pre.patchSize = v.patchSize
        pre.mergeSize = v.spatialMergeSize
        pre.temporalPatchSize = v.temporalPatchSize
        (pre.imageMean, pre.imageStd) = try m.imageNormalization()
        let side = SizeKind.imageSide.bounds.upperBound
        let minimum = m.gguf.int("clip.vision.image_min_pixels") ?? pre.minPixels
        let maximum = m.gguf.int("clip.vision.image_max_pixels") ?? max(pre.maxPixels, minimum)
        guard minimum > 0, maximum >= minimum, maximum <= side * side else {
            throw VLMError.malformed(file: m.path, cause: "clip.vision.image_min_pixels / image_max_pixels \(minimum)...\(maximum) is empty or more than a \(side)x\(side) picture")
        }
        (pre.minPixels, pre.maxPixels) = (minimum, maximum)
        let d = v.hiddenSize
        func matrix(_ rows: Int, _ cols: Int, _ values: [Float], _ name: String) throws(WeightsError) -> Matrix {
            do { return try Matrix(rows: rows, cols: cols, storage: values) } catch {
                throw .badTensor(file: m.path, name: name, cause: "\(error)")
            }
        }
        return try Qwen25VLVisionModel(vision: v, preprocessing: pre, prefix: "visual.", precision: precision) { (name, shape) throws(WeightsError) in
            guard let sources = mmprojSources(name) else { throw .missingTensor(name: name, file: m.path) }
            if sources.count == 1 { return (try m.tensor(sources[0], shape: shape), false) }
            if name.hasSuffix("patch_embed.proj.weight") {
                // [hidden, channels, t, p, p] from one [hidden, channels, p, p] per frame: frame t of
                // channel c of output o is the p·p run of the t-th file at (o, c).
                guard shape.count == 5, shape[2] == sources.count else {
                    throw .badTensor(file: m.path, name: sources[0], cause: "expected a Conv3d of \(sources.count) frames, not \(shape)")
                }
                let perFrame = [shape[0], shape[1], shape[3], shape[4]]
                var frames: [Matrix] = []
                for source in sources { frames.append(try m.tensor(source, shape: perFrame)) }
                let area = shape[3] * shape[4], units = shape[0] * shape[1], t = shape[2]
                var out = [Float](repeating: 0, count: units * t * area)
                for unit in 0..<units {
                    for f in 0..<t {
                        out.replaceSubrange((unit * t + f) * area ..< (unit * t + f + 1) * area,
                                            with: frames[f].storage[unit * area ..< (unit + 1) * area])
                    }
                }
                return (try matrix(shape[0], out.count / shape[0], out, sources[0]), false)
            }
            // qkv: q, k and v one after another, rows of the weight or runs of the bias.
            let each = shape.count == 2 ? [d, d] : [d]
            var values: [Float] = []
            for source in sources { values += try m.tensor(source, shape: each).storage }
            return (try matrix(shape.count == 2 ? 3 * d : 1, shape.count == 2 ? d : 3 * d, values, sources[0]), false)
        }
    }

    /// The mmproj tensors a tensor the encoder reads (prefix "visual.") is made of: one, or the
    /// parts the converter split it into (two frames of the patch embedding; q, k, v of qkv).
    static func mmprojSources(_ name: String) -> [String]? {
        switch name {
        case "visual.patch_embed.proj.weight": return ["v.patch_embd.weight", "v.patch_embd.weight.1"]
        case "visual.merger.ln_q.weight": return ["v.post_ln.weight"]
        case "visual.merger.mlp.0.weight", "visual.merger.mlp.0.bias", "visual.merger.mlp.2.weight", "visual.merger.mlp.2.bias":
            return ["mm." + name.dropFirst("visual.merger.mlp.".count)]
        default:
            break
        }
        let blocks = "visual.blocks."
        let parts = name.dropFirst(blocks.count).split(separator: ".", maxSplits: 1).map(String.init)  // N, rest
        guard name.hasPrefix(blocks), parts.count == 2, let block = Int(parts[0]) else { return nil }
        let n = "v.blk.\(block)."
        switch parts[1] {
        case "attn.qkv.weight": return ["attn_q", "attn_k", "attn_v"].map { "\(n)\($0).weight" }
        case "attn.qkv.bias": return ["attn_q", "attn_k", "attn_v"].map { "\(n)\($0).bias" }
        default:
            let map = ["norm1.weight": "ln1.weight", "norm2.weight": "ln2.weight", "attn.proj.weight": "attn_out.weight",
                       "attn.proj.bias": "attn_out.bias", "mlp.gate_proj.weight": "ffn_gate.weight",
                       "mlp.gate_proj.bias": "ffn_gate.bias", "mlp.up_proj.weight": "ffn_up.weight",
                       "mlp.up_proj.bias": "ffn_up.bias", "mlp.down_proj.weight": "ffn_down.weight",
                       "mlp.down_proj.bias": "ffn_down.bias"]
            return map[parts[1]].map { [n + $0] }
        }
    }
}
