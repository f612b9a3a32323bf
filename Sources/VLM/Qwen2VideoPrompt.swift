// The Qwen2.5-VL video prompt, as its chat template (rendered by ChatTemplate) and processor build
// it, with each temporal patch's run of <|video_pad|> shortened to the tokens HiPrune kept; with
// the checkpoint's template:
//
//     <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
//     <|im_start|>user\n<|vision_start|><|video_pad|>…<|video_pad|><|vision_end|>QUESTION<|im_end|>\n
//     <|im_start|>assistant\n
//
// Positions follow transformers' get_rope_index (5.x) on the FULL prompt, then are sliced:
// - text rows: one counter on all three axes;
// - the video (T temporal patches of an h × w merged grid) starting at counter s:
//   t = s + int(tp · tokens_per_second · second_per_grid_t) (float32, truncated), h = s + row, w = s + col;
// - after the video the counter continues from s + max(h, w) (transformers 5; older releases used
//   the video's max position + 1);
// - generation continues from the full prompt's largest position + 1 (the reference's rope_deltas).
// Kept tokens keep their original (t, h, w) — sliced, never recomputed.
import Foundation
import Tensor

public struct Qwen2VideoPrompt: Sendable, Equatable {
    public static let videoPad = "<|video_pad|>"

    /// One temporal patch: its merged grid's sides and the kept merged-token indices (raster, ascending).
    public struct TemporalPatch: Sendable, Equatable {
        public var rows: Int
        public var cols: Int
        public var kept: [Int]
        public init(rows: Int, cols: Int, kept: [Int]) {
            self.rows = rows
            self.cols = cols
            self.kept = kept
        }
    }

    /// Token ids of the pruned prompt.
    public var ids: [Int]
    /// One M-RoPE position per id.
    public var positions: [MRoPEPosition]
    /// Rows of `ids` holding <|video_pad|>, in order: kept token k of patch 0, then patch 1, …
    public var videoRows: [Int]
    /// Position of the first generated token.
    public var nextPosition: Int
    /// Tokens of the same prompt unpruned.
    public var fullLength: Int

    /// Builds the prompt. `secondsPerTemporalPatch` is second_per_grid_t (temporal patch size / sampled fps).
    /// The text around the video is the tokenizer's chat template rendered for one user turn
    /// [video, question] (with a system turn first when `systemPrompt` is given; without one the
    /// template adds its own); its single <|video_pad|> is then expanded as the processor does.
    public init(tokenizer: Tokenizer, configuration c: Qwen2Configuration, question: String,
                patches: [TemporalPatch], secondsPerTemporalPatch: Double,
                systemPrompt: String? = nil) throws(VLMError) {
        let template = try ChatTemplate(tokenizer: tokenizer)
        var messages: [ChatMessage] = []
        if let systemPrompt { messages.append(ChatMessage(role: "system", content: systemPrompt)) }
        messages.append(ChatMessage(role: "user", parts: [.video, .text(question)]))
        let chat = try template.render(messages: messages, addGenerationPrompt: true)
        let pieces = chat.components(separatedBy: Self.videoPad)
        guard pieces.count == 2 else {
            throw .malformed(file: template.source, cause: "the rendered video prompt holds \(pieces.count - 1) \(Self.videoPad), not one")
        }
        guard tokenizer.id(of: Self.videoPad) == c.videoTokenID else {
            throw .malformed(file: "tokenizer.json", cause: "\(Self.videoPad) is not the configuration's video_token_id \(c.videoTokenID)")
        }
        guard let first = patches.first else { throw .invalidArgument(name: "video", cause: "no temporal patches") }
        for (i, p) in patches.enumerated() {
            guard p.rows == first.rows, p.cols == first.cols, p.rows > 0, p.cols > 0 else {
                throw .invalidArgument(name: "temporal patch \(i)", cause: "grid \(p.rows)x\(p.cols); every patch of a video shares one grid (\(first.rows)x\(first.cols))")
            }
            let n = p.rows * p.cols
            guard p.kept.allSatisfy({ $0 >= 0 && $0 < n }), zip(p.kept, p.kept.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw .invalidArgument(name: "temporal patch \(i)", cause: "kept indices must be ascending and inside 0..<\(n)")
            }
        }
        var ids: [Int] = [], positions: [MRoPEPosition] = [], videoRows: [Int] = []
        var counter = 0
        var fullMax = -1
        var fullLength = 0
        func text(_ pieceIDs: [Int]) {
            for id in pieceIDs {
                ids.append(id)
                positions.append(MRoPEPosition(text: counter))
                fullMax = max(fullMax, counter)
                counter += 1
                fullLength += 1
            }
        }
        text(tokenizer.encode(pieces[0]))
        let start = counter
        let interval = Float(c.tokensPerSecond) * Float(secondsPerTemporalPatch)
        for (tp, patch) in patches.enumerated() {
            let t = start + Int(Float(tp) * interval)
            var keep = patch.kept[...]
            for index in 0..<(patch.rows * patch.cols) {
                let p = MRoPEPosition(t: t, h: start + index / patch.cols, w: start + index % patch.cols)
                fullMax = max(fullMax, p.maximum)
                fullLength += 1
                guard keep.first == index else { continue }
                keep = keep.dropFirst()
                videoRows.append(ids.count)
                ids.append(c.videoTokenID)
                positions.append(p)
            }
        }
        counter = start + max(first.rows, first.cols)
        text(tokenizer.encode(pieces[1]))
        self.ids = ids
        self.positions = positions
        self.videoRows = videoRows
        self.nextPosition = fullMax + 1
        self.fullLength = fullLength
    }

    /// Token embeddings of the prompt with the kept features ([videoRows.count, hidden], in order) in place.
    public func embeddings(model: some DecoderModel, features: Matrix) throws(VLMError) -> Matrix {
        var out = try model.embed(ids)
        guard features.rows == videoRows.count, features.cols == out.cols else {
            throw .invalidArgument(name: "video features", cause: "\(features.rows)x\(features.cols) for \(videoRows.count) video tokens of width \(out.cols)")
        }
        let w = out.cols
        out.storage.withUnsafeMutableBufferPointer { dst in
            features.storage.withUnsafeBufferPointer { src in
                for (i, r) in videoRows.enumerated() {
                    (dst.baseAddress! + r * w).update(from: src.baseAddress! + i * w, count: w)
                }
            }
        }
        return out
    }
}

extension DecoderSession {
    /// Prefills a video prompt with its kept features; generation then continues from the full
    /// prompt's largest position + 1.
    public func prefill(prompt: Qwen2VideoPrompt, features: Matrix) throws(VLMError) {
        try prefill(embeddings: prompt.embeddings(model: decoder, features: features), positions: prompt.positions)
        cache.nextPosition = prompt.nextPosition
    }
}
