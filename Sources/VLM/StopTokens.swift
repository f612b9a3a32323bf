import Foundation

/// Tokens that end an answer, read once for every family: the configuration's `eos_token_id`s,
/// `generation_config.json`'s (an id or a list) when the model is a directory, the tokenizer's
/// end of sequence, and the end-of-turn markers of the chat formats in use (`<end_of_utterance>`
/// of SmolVLM, `<|im_end|>` and `<|endoftext|>` of ChatML / Qwen, `</s>` where the tokenizer names
/// it its eos).
public enum StopTokens {
    public static let turnMarkers = ["<end_of_utterance>", "<|im_end|>", "<|endoftext|>"]

    public static func read(directory: String?, configured: [Int], tokenizer: Tokenizer) -> Set<Int> {
        var stops = Set(configured)
        if let directory, let config = try? readJSONObject((directory as NSString).appendingPathComponent("generation_config.json")) {
            if let ids = config["eos_token_id"] as? [Int] { stops.formUnion(ids) } else if let id = config["eos_token_id"] as? Int { stops.insert(id) }
        }
        if let eos = tokenizer.eosID { stops.insert(eos) }
        for name in turnMarkers {
            if let id = tokenizer.id(of: name) { stops.insert(id) }
        }
        return stops
    }
}
