// The LLaVA families' video prompt, as transformers' processors build it: the checkpoint's own chat
// template (ChatTemplate) rendered for one user turn, then each placeholder expanded to the tokens
// its frame keeps after pruning, then tokenized with the tokenizer's special tokens (Llama's BOS)
// unless the rendered text already starts with BOS (ProcessorMixin.apply_chat_template's rule).
//
// The turn's content is what the processor is given for a video:
// - LLaVA-1.5 and LLaVA-NeXT: the sampled frames as images, then the question. llava-hf's templates
//   render every image first, so (vicuna)
//       USER: <image>\n<image>\n…QUESTION ASSISTANT:        or (mistral) [INST] <image>\n…QUESTION [/INST]
//   and each `<image>` becomes its frame's run of kept tokens (LlavaProcessor.replace_image_token,
//   with the pruned count instead of the full grid);
// - LLaVA-NeXT-Video: one video part, then the question: `USER: <video>\nQUESTION ASSISTANT:`, the
//   `<video>` becoming every frame's pooled kept tokens in order (LlavaNextVideoProcessor).
// The placeholder rows receive the kept features in order, as transformers' merger does.
import Foundation

public struct LlavaVideoPrompt: Sendable {
    public enum Layout: Sendable, Equatable {
        /// One image per frame (LLaVA-1.5, LLaVA-NeXT).
        case images
        /// One video for all frames (LLaVA-NeXT-Video).
        case video
    }

    public static let imageToken = "<image>"
    public static let videoToken = "<video>"

    public let template: ChatTemplate
    public let layout: Layout
    public let bosToken: String?
    public let eosToken: String?

    public var placeholder: String { layout == .video ? Self.videoToken : Self.imageToken }

    /// The prompt of `tokenizer`'s chat template (its directory's or GGUF's); errors name the file.
    public init(tokenizer: Tokenizer, layout: Layout) throws(VLMError) {
        self.template = try ChatTemplate(tokenizer: tokenizer)
        self.layout = layout
        bosToken = tokenizer.bosID.map { tokenizer.vocabulary[$0] }
        eosToken = tokenizer.eosID.map { tokenizer.vocabulary[$0] }
    }

    /// The rendered turn with one placeholder per image (or one for the video).
    public func chat(frames: Int, question: String) throws(VLMError) -> String {
        let media: [ChatContentPart] = layout == .video ? [.video] : Array(repeating: .image, count: frames)
        return try template.render(messages: [ChatMessage(role: "user", parts: media + [.text(question)])],
                                   addGenerationPrompt: true, bosToken: bosToken, eosToken: eosToken)
    }

    /// The whole prompt text for one question, each placeholder run as long as its frame's kept
    /// tokens (`frameTokens`), ending where the assistant's answer starts.
    public func text(frameTokens: [Int], question: String) throws(VLMError) -> String {
        let rendered = try chat(frames: frameTokens.count, question: question)
        let pieces = rendered.components(separatedBy: placeholder)
        let runs = layout == .video ? [frameTokens.reduce(0, +)] : frameTokens
        guard pieces.count == runs.count + 1 else {
            throw .malformed(file: template.source,
                             cause: "the rendered prompt holds \(pieces.count - 1) \(placeholder) tokens where \(runs.count) runs go (does the question contain \(placeholder)?)")
        }
        var text = pieces[0]
        for (run, piece) in zip(runs, pieces.dropFirst()) {
            text += String(repeating: placeholder, count: run) + piece
        }
        return text
    }

    /// Token ids of the prompt: BOS (the post-processor's tokens) unless the text starts with it.
    public func ids(frameTokens: [Int], question: String, tokenizer: Tokenizer) throws(VLMError) -> [Int] {
        let text = try text(frameTokens: frameTokens, question: question)
        let special = !(bosToken.map { !$0.isEmpty && text.hasPrefix($0) } ?? false)
        return tokenizer.encode(text, addSpecialTokens: special)
    }
}
