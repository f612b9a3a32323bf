// llama.cpp's vision-language GGUF pair, as llama-mtmd-cli takes it: the text model (`--model
// TEXT.gguf`) and a projector file (`--mmproj MMPROJ.gguf`, general.architecture "clip") holding the
// vision tower, the connector and `clip.*` metadata (image_size, patch_size, projector_type,
// image_mean/std, …). convert_hf_to_gguf.py --mmproj names the tower's tensors v.patch_embd,
// v.position_embd, v.blk.N.{ln1, attn_q, attn_k, attn_v, attn_out, ln2, ffn_up, ffn_gate, ffn_down},
// v.post_ln, and the connector mm.*; each family's reader (Families/*Mmproj.swift) maps the names
// its encoder loads — transformers' — onto these, so the very encoder that reads a Hugging Face
// directory reads the mmproj, and HiPrune still sees every layer's attention.
import Foundation
import Tensor
import Vision
import VLM

/// A projector GGUF (`--mmproj`): its metadata and its tensors under transformers' shapes.
public struct MmprojFile: Sendable {
    public let gguf: GGUFFile
    /// `clip.projector_type`: which family reads the file ("idefics3", "qwen2.5vl_merger", …).
    public let projectorType: String
    public var path: String { gguf.path }

    public init(path: String) throws(VLMError) {
        gguf = try GGUFFile(path: path)
        let architecture = gguf.string("general.architecture") ?? "(none)"
        guard architecture == "clip" else {
            throw .unsupported(file: path, feature: "general.architecture '\(architecture)' for --mmproj (a projector file has 'clip'; is this the text model?)")
        }
        guard gguf.metadata["clip.has_vision_encoder"]?.boolValue == true else {
            throw .missingField(file: path, field: "clip.has_vision_encoder (the projector has no vision tower)")
        }
        guard let type = gguf.string("clip.projector_type") else { throw .missingField(file: path, field: "clip.projector_type") }
        projectorType = type
    }

    /// A required size field, checked against its bounds before anything is built from it.
    public func size(_ key: String, _ kind: SizeKind) throws(VLMError) -> Int {
        guard let value = gguf.metadata[key] else { throw .missingField(file: path, field: key) }
        guard let n = value.intValue else { throw .malformed(file: path, cause: "\(key): \(value) is not an integer") }
        if let (field, cause) = SizeLimits.violation([(key, n, kind)]) { throw .malformed(file: path, cause: "\(field): \(cause)") }
        return n
    }

    /// An optional size field (nil when absent), checked as `size` checks.
    public func optionalSize(_ key: String, _ kind: SizeKind) throws(VLMError) -> Int? {
        guard gguf.metadata[key] != nil else { return nil }
        return try size(key, kind)
    }

    /// `clip.vision.image_mean` / `image_std`: one value per channel.
    public func channelValues(_ key: String) throws(VLMError) -> [Float] {
        guard let items = gguf.metadata[key]?.arrayValue else { throw .missingField(file: path, field: key) }
        let values = items.compactMap(\.doubleValue).map { Float($0) }
        guard values.count == 3, values.allSatisfy(\.isFinite) else {
            throw .malformed(file: path, cause: "\(key): expected 3 finite numbers, found \(items)")
        }
        return values
    }

    /// A pre-norm ViT's sizes from `clip.vision.*`: embedding_length → hidden_size,
    /// feed_forward_length → intermediate_size, attention.head_count → num_attention_heads,
    /// image_size, patch_size, layer_norm_epsilon; the depth, channels and activation are the family's to read.
    public func readViTSizes<V: ViTVisionFields>(into v: inout V) throws(VLMError) {
        v.hiddenSize = try size("clip.vision.embedding_length", .width)
        v.intermediateSize = try size("clip.vision.feed_forward_length", .width)
        v.numAttentionHeads = try size("clip.vision.attention.head_count", .heads)
        v.imageSize = try size("clip.vision.image_size", .imageSide)
        v.patchSize = try size("clip.vision.patch_size", .patch)
        v.layerNormEps = layerNormEpsilon
    }

    /// `clip.vision.image_mean` / `image_std`, every standard deviation non-zero.
    public func imageNormalization() throws(VLMError) -> (mean: [Float], std: [Float]) {
        let mean = try channelValues("clip.vision.image_mean"), std = try channelValues("clip.vision.image_std")
        guard std.allSatisfy({ $0 != 0 }) else { throw .malformed(file: path, cause: "clip.vision.image_std: a standard deviation is 0") }
        return (mean, std)
    }

    /// The encoder's layer-norm epsilon (`clip.vision.attention.layer_norm_epsilon`; clip.cpp's default 1e-6).
    public var layerNormEpsilon: Float { Float(gguf.double("clip.vision.attention.layer_norm_epsilon") ?? 1e-6) }

    /// The tensor `name` as transformers holds it: `shape` is transformers' shape (a weight's
    /// [out, in], a convolution's [out, channels, kh, kw]); the file lists dimensions innermost first,
    /// so they are `shape` reversed (size-1 dimensions dropped, as the converter squeezes). F16, BF16 and
    /// quantized tensors are widened to F32 here: the encoder holds its weights as `EncoderPrecision` says.
    /// Returns [shape[0], product of the rest], a vector as one row.
    public func tensor(_ name: String, shape: [Int]) throws(WeightsError) -> Matrix {
        guard let info = gguf.tensors[name] else { throw .missingTensor(name: name, file: path) }
        let expected = shape.filter { $0 != 1 }
        guard info.dimensions.filter({ $0 != 1 }) == expected.reversed() else {
            throw .badTensor(file: path, name: name, cause: "dimensions \(info.dimensions), expected \(Array(shape.reversed())) (transformers' \(shape))")
        }
        let values: [Float]
        do { values = try gguf.floats(name) } catch { throw .badTensor(file: path, name: name, cause: "\(error)") }
        let rows = shape.count >= 2 ? shape[0] : 1
        do {
            return try Matrix(rows: rows, cols: values.count / max(1, rows), storage: values)
        } catch {
            throw .badTensor(file: path, name: name, cause: "\(error)")
        }
    }

    /// llama.cpp's name of a pre-norm ViT layer tensor, from the name under transformers' encoder
    /// ("layers.3.self_attn.q_proj.weight" → "v.blk.3.attn_q.weight"); nil for other names.
    public static func layerTensorName(_ hf: String) -> String? {
        let parts = hf.split(separator: ".", maxSplits: 2).map(String.init)  // layers, N, rest
        guard parts.count == 3, parts[0] == "layers", Int(parts[1]) != nil else { return nil }
        let map = ["layer_norm1": "ln1", "layer_norm2": "ln2", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                   "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out", "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down"]
        guard let dot = parts[2].lastIndex(of: "."), let module = map[String(parts[2][..<dot])] else { return nil }
        return "v.blk.\(parts[1]).\(module)\(parts[2][dot...])"
    }
}

/// How a family reads llama.cpp's GGUF pair: the `clip.projector_type`s it claims (and, where two
/// families share a type, which files of it), the text architectures it pairs them with, the
/// language model's width the projector maps into, and loaders for the encoder (from the mmproj),
/// the answerer (the text GGUF's decoder, tokenizer and chat template, with the mmproj for the
/// connector's facts) and the decoder's shape. A family without one refuses `--mmproj`.
public struct MmprojSupport: Sendable {
    public let projectorTypes: [String]
    /// `general.architecture` values of the text GGUF the family's answerer reads.
    public let textArchitectures: [String]
    /// Whether a file of one of `projectorTypes` is this family's (LLaVA-1.5 and LLaVA-NeXT share "mlp").
    let accepts: @Sendable (_ mmproj: MmprojFile) -> Bool
    /// The width of the projector's output (the text model's embedding_length) and the field it was read from.
    let outputWidth: @Sendable (_ mmproj: MmprojFile) throws -> (width: Int, field: String)
    let encoder: @Sendable (_ mmproj: MmprojFile, _ precision: EncoderPrecision) throws -> any FrameEncoder
    let answerer: @Sendable (_ text: String, _ mmproj: MmprojFile, _ precision: WeightPrecision) throws -> any VideoAnswerer
    let decoderShape: @Sendable (_ text: GGUFFile) throws -> DecoderShape

    /// `outputWidth` defaults to `clip.vision.projection_dim`, as convert_hf_to_gguf.py --mmproj writes it.
    public init(projectorTypes: [String], textArchitectures: [String],
                accepts: @escaping @Sendable (_ mmproj: MmprojFile) -> Bool = { _ in true },
                outputWidth: (@Sendable (_ mmproj: MmprojFile) throws -> (width: Int, field: String))? = nil,
                encoder: @escaping @Sendable (_ mmproj: MmprojFile, _ precision: EncoderPrecision) throws -> any FrameEncoder,
                answerer: @escaping @Sendable (_ text: String, _ mmproj: MmprojFile, _ precision: WeightPrecision) throws -> any VideoAnswerer,
                decoderShape: @escaping @Sendable (_ text: GGUFFile) throws -> DecoderShape) {
        self.projectorTypes = projectorTypes
        self.textArchitectures = textArchitectures
        self.accepts = accepts
        self.outputWidth = outputWidth ?? { m in
            let width = try m.size("clip.vision.projection_dim", .width)
            return (width, "clip.vision.projection_dim")
        }
        self.encoder = encoder
        self.answerer = answerer
        self.decoderShape = decoderShape
    }
}
