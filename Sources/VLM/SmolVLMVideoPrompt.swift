import Foundation

/// The SmolVLM2 video prompt exactly as transformers' `SmolVLMProcessor` builds it, with each
/// frame's run of image tokens shortened to the tokens HiPrune kept.
///
/// Reference (processing_smolvlm.py): the processor's video chat template (`videoChatTemplate`,
/// rendered by ChatTemplate) gives a user turn whose content is the video then the question,
///
///     <|im_start|>User: <video>QUESTION<end_of_utterance>\nAssistant:
///
/// and `<video>` expands to
///
///     You are provided the following series of {frames in words} frames from a {H:MM:SS} [H:MM:SS] video.\n
///     \nFrame from MM:SS:<fake_token_around_image><global-img><image>…<image><fake_token_around_image>   (per frame)
///     \n\n
///
/// Frame timestamps are `int(t // 60):int(t % 60)`; the duration is `int(duration)` seconds
/// printed as Python's `timedelta` does. Unpruned, every frame has `image_seq_len` image tokens
/// (64 for SmolVLM2 at 512 px); pruned, frame i has exactly its kept count, and the kept
/// features fill the `<image>` positions in order, as the reference's inputs merger does.
public struct SmolVLMVideoPrompt: Sendable, Equatable {
    public struct Frame: Sendable, Equatable {
        public var time: Double
        public var imageTokens: Int
        public init(time: Double, imageTokens: Int) {
            self.time = time
            self.imageTokens = imageTokens
        }
    }

    public static let imageToken = "<image>"
    public static let fakeTokenAroundImage = "<fake_token_around_image>"
    public static let globalImageToken = "<global-img>"
    public static let endOfUtterance = "<end_of_utterance>"

    public var frames: [Frame]
    /// Seconds; the reference prints `int(duration)`.
    public var duration: Double

    public init(frames: [Frame], duration: Double) {
        self.frames = frames
        self.duration = duration
    }

    /// The expansion of `<video>`.
    public var videoText: String {
        var text = "You are provided the following series of \(numberInWords(frames.count)) frames from a "
            + "\(Self.clock(seconds: duration)) [H:MM:SS] video.\n"
        for frame in frames {
            let t = max(0, frame.time.isFinite ? frame.time : 0)
            let minutes = Int(t / 60), seconds = Int(t.truncatingRemainder(dividingBy: 60))
            text += "\nFrame from " + String(format: "%02d:%02d", minutes, seconds) + ":"
            text += Self.fakeTokenAroundImage + Self.globalImageToken
            text += String(repeating: Self.imageToken, count: frame.imageTokens)
            text += Self.fakeTokenAroundImage
        }
        return text + "\n\n"
    }

    /// The chat template SmolVLMProcessor renders whenever the conversation holds a video
    /// (transformers' processing_smolvlm.py DEFAULT_CHAT_TEMPLATE, used in place of the
    /// checkpoint's own, which has no video branch), verbatim.
    public static let videoChatTemplate = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"

    /// The whole prompt for one question, ending where the assistant's answer starts: the video
    /// chat template rendered for one user turn [video, question], then `<video>` expanded, as the
    /// processor does.
    public func text(question: String) throws(VLMError) -> String {
        let template = try ChatTemplate(text: Self.videoChatTemplate, source: "SmolVLMProcessor video chat template")
        let chat = try template.render(messages: [ChatMessage(role: "user", parts: [.video, .text(question)])],
                                       addGenerationPrompt: true)
        guard let video = chat.range(of: "<video>") else {
            throw .malformed(file: template.source, cause: "the rendered prompt has no <video>")
        }
        return chat.replacingCharacters(in: video, with: videoText)
    }

    /// Python's `str(timedelta(seconds=int(s)))` for s < 1 day: `H:MM:SS`.
    static func clock(seconds: Double) -> String {
        let s = seconds.isFinite ? max(0, Int(seconds)) : 0
        return String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
    }
}

/// English cardinal words as the `num2words` package writes them ("eight", "twenty-one",
/// "one hundred and five", "two thousand, one hundred and twelve"), which the reference uses
/// for the frame count.
public func numberInWords(_ n: Int) -> String {
    let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
    let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    if n < 0 { return "minus " + numberInWords(-n) }
    if n < 20 { return ones[n] }
    if n < 100 { return tens[n / 10] + (n % 10 == 0 ? "" : "-" + ones[n % 10]) }
    if n < 1000 {
        let rest = n % 100
        return ones[n / 100] + " hundred" + (rest == 0 ? "" : " and " + numberInWords(rest))
    }
    if n < 1_000_000 {
        let rest = n % 1000
        let head = numberInWords(n / 1000) + " thousand"
        if rest == 0 { return head }
        return head + (rest < 100 ? " and " : ", ") + numberInWords(rest)
    }
    return String(n)
}
