import Foundation

/// The LLaVA families' video prompt, with each frame's run of placeholder tokens as long as the
/// tokens it keeps after pruning.
///
/// LLaVA-1.5 and LLaVA-NeXT (vicuna) ship the template `USER: <image>\n… ASSISTANT:` (images first,
/// then the text, `ASSISTANT:` as the generation prompt); a video is its sampled frames as images,
/// each introduced by its time:
///
///     USER: Frame at 00:00.0: <image>…<image>\nFrame at 00:01.5: <image>…<image>\nQUESTION ASSISTANT:
///
/// LLaVA-NeXT on Mistral (llava-v1.6-mistral) wraps the same turn as `[INST] … [/INST]`.
///
/// LLaVA-NeXT-Video's template puts the whole video in one `<video>` run (every frame's pooled
/// tokens in order, no text between them, as its processor expands it):
///
///     USER: <video>…<video>\nQUESTION ASSISTANT:
///
/// The placeholder rows receive the kept features in order, as transformers' merger does.
/// This is the one place the text is built; rendering the checkpoint's own chat template can
/// replace it.
public struct LlavaVideoPrompt: Sendable, Equatable {
    public enum Layout: Sendable, Equatable {
        /// One `<image>` run per frame, each after its time (LLaVA-1.5, LLaVA-NeXT).
        case timedImages
        /// One `<video>` run for all frames (LLaVA-NeXT-Video).
        case video
    }

    public struct Frame: Sendable, Equatable {
        public var time: Double
        /// Placeholder tokens of the frame: its kept features (newline rows included).
        public var tokens: Int
        public init(time: Double, tokens: Int) {
            self.time = time
            self.tokens = tokens
        }
    }

    /// The turn's wrapping: vicuna's `USER: … ASSISTANT:` or Mistral's `[INST] … [/INST]`.
    public enum Chat: Sendable, Equatable { case vicuna, mistral }

    public static let imageToken = "<image>"
    public static let videoToken = "<video>"

    public var layout: Layout
    public var chat: Chat
    public var frames: [Frame]

    public init(layout: Layout, chat: Chat = .vicuna, frames: [Frame]) {
        self.layout = layout
        self.chat = chat
        self.frames = frames
    }

    public var placeholder: String { layout == .video ? Self.videoToken : Self.imageToken }

    /// The whole prompt for one question, ending where the assistant's answer starts.
    public func text(question: String) -> String {
        var text = chat == .mistral ? "[INST] " : "USER: "
        switch layout {
        case .timedImages:
            for frame in frames {
                let t = max(0, frame.time.isFinite ? frame.time : 0)
                let minutes = Int(t / 60), seconds = t.truncatingRemainder(dividingBy: 60)
                text += "Frame at " + String(format: "%02d:%04.1f", minutes, seconds) + ": "
                text += String(repeating: Self.imageToken, count: frame.tokens) + "\n"
            }
        case .video:
            text += String(repeating: Self.videoToken, count: frames.reduce(0) { $0 + $1.tokens }) + "\n"
        }
        return text + question + (chat == .mistral ? " [/INST]" : " ASSISTANT:")
    }
}
