// Building a Tokenizer from the files models ship: tokenizer.json (+ tokenizer_config.json for the
// chat template and the names of bos/eos) in a Hugging Face directory, or a GGUF's tokenizer.ggml.*.
import Foundation

extension Tokenizer {
    /// Reads `directory`/tokenizer.json, the bos/eos names of tokenizer_config.json, and the chat
    /// template text where ChatTemplate.locate finds it.
    public init(directory: String) throws(VLMError) {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        try self.init(tokenizerJSON: path)
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        if let config = try? readJSONObject(configPath) {
            if let name = Self.tokenName(config["bos_token"]), let id = id(of: name) { bosID = id }
            if let name = Self.tokenName(config["eos_token"]), let id = id(of: name) { eosID = id }
        }
        if let template = try ChatTemplate.locate(directory: directory) {
            chatTemplate = template.text
            chatTemplateFile = template.file
        }
    }

    private static func tokenName(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let d = value as? [String: Any] { return d["content"] as? String }
        return nil
    }

    /// Reads one tokenizer.json: BPE, byte-level or SentencePiece-style with byte fallback.
    public init(tokenizerJSON path: String) throws(VLMError) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .unreadable(file: path, cause: "no such file (the model directory needs its tokenizer.json)")
        }
        let root = try readJSONObject(path)
        guard let model = root["model"] as? [String: Any] else { throw .missingField(file: path, field: "model") }
        let type = model["type"] as? String ?? "?"
        guard type == "BPE" else { throw .unsupported(file: path, feature: "tokenizer model '\(type)' (only BPE)") }
        let normalizers = try Normalizer.parse(root["normalizer"], file: path)
        let decoders = try TokenDecoder.parse(root["decoder"], file: path)
        let post = try PostProcessor.parse(root["post_processor"], file: path)
        // Dropout skips merges at random while encoding; 0 (or null) is plain BPE.
        if let dropout = model["dropout"] as? Double, dropout > 0 {
            throw .unsupported(file: path, feature: "BPE dropout \(dropout)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = model[key] as? String, !affix.isEmpty {
                throw .unsupported(file: path, feature: "BPE \(key) '\(affix)'")
            }
        }
        guard let vocab = model["vocab"] as? [String: Int] else { throw .missingField(file: path, field: "model.vocab") }
        var merges: [(String, String)] = []
        for item in model["merges"] as? [Any] ?? [] {
            if let s = item as? String, let space = s.firstIndex(of: " ") {
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            } else if let pair = item as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw .malformed(file: path, cause: "merge \(merges.count) is neither \"a b\" nor [a, b]")
            }
        }
        var added: [AddedToken] = []
        for item in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = item["id"] as? Int, let content = item["content"] as? String else {
                throw .malformed(file: path, cause: "added token without id/content")
            }
            if item["single_word"] as? Bool == true {
                throw .unsupported(file: path, feature: "added token '\(content)' with single_word")
            }
            let special = item["special"] as? Bool ?? false
            added.append(AddedToken(id: id, content: content, special: special,
                                    lstrip: item["lstrip"] as? Bool ?? false, rstrip: item["rstrip"] as? Bool ?? false,
                                    normalized: item["normalized"] as? Bool ?? !special))
        }
        let pre = try PreTokenizer.parse(root["pre_tokenizer"], file: path)
        try self.init(vocabulary: vocab, merges: merges, addedTokens: added, normalizers: normalizers, preTokenizers: pre,
                      decoders: root["decoder"] == nil || root["decoder"] is NSNull ? nil : decoders, postProcessor: post,
                      byteFallback: model["byte_fallback"] as? Bool ?? false, ignoreMerges: model["ignore_merges"] as? Bool ?? false, unknownToken: model["unk_token"] as? String,
                      fuseUnknown: model["fuse_unk"] as? Bool ?? false, source: path)
    }

    /// The tokenizer stored in a GGUF: tokenizer.ggml.model "gpt2" (byte-level BPE) or "llama"
    /// (SentencePiece with byte fallback, see `init(sentencePiece:tokens:)`).
    public init(gguf: GGUFFile) throws(VLMError) {
        let file = gguf.path
        guard let model = gguf.string("tokenizer.ggml.model") else {
            throw .missingField(file: file, field: "tokenizer.ggml.model")
        }
        guard model == "gpt2" || model == "llama" else {
            throw .unsupported(file: file, feature: "tokenizer.ggml.model '\(model)' (supported: gpt2 byte-level BPE, llama SentencePiece)")
        }
        guard let tokens = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue else {
            throw .missingField(file: file, field: "tokenizer.ggml.tokens")
        }
        if model == "llama" {
            try self.init(sentencePiece: gguf, tokens: tokens)
            return
        }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        var added: [AddedToken] = []
        for (id, token) in tokens.enumerated() {
            guard let text = token.stringValue else { throw .malformed(file: file, cause: "tokenizer.ggml.tokens[\(id)] is not a string") }
            // token_type: 1 normal, 3 control (special), 4 user-defined (added, not special).
            switch types?[safe: id] ?? 1 {
            case 3: added.append(AddedToken(id: id, content: text, special: true, lstrip: false, rstrip: false))
            case 4: added.append(AddedToken(id: id, content: text, special: false, lstrip: false, rstrip: false))
            default: if vocab[text] == nil { vocab[text] = id }
            }
        }
        var merges: [(String, String)] = []
        for (i, m) in (gguf.metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).enumerated() {
            guard let s = m.stringValue, let space = s.firstIndex(of: " ") else {
                throw .malformed(file: file, cause: "tokenizer.ggml.merges[\(i)] is not \"a b\"")
            }
            merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
        }
        // llama.cpp names its pre-tokenizer regex sets; SmolLM2's splits digits one by one first.
        // Qwen2's: NFC, then its GPT-4-style split (digits one by one) before the byte-level map.
        let preName = gguf.string("tokenizer.ggml.pre") ?? "default"
        let pre: [PreTokenizer]
        var normalizers: [Normalizer] = []
        switch preName {
        case "smollm": pre = [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]
        case "gpt-2", "gpt2", "default": pre = [.byteLevel(addPrefixSpace: false, useRegex: true)]
        case "qwen2":
            normalizers = [.nfc]
            pre = [.split(pattern: .gpt4Words(digitRun: 1), behavior: .isolated, invert: false),
                   .byteLevel(addPrefixSpace: false, useRegex: false)]
        default: throw .unsupported(file: file, feature: "tokenizer.ggml.pre '\(preName)' (supported: smollm, qwen2, gpt-2, default)")
        }
        try self.init(vocabulary: vocab, merges: merges, addedTokens: added, normalizers: normalizers, preTokenizers: pre, source: file)
        bosID = gguf.int("tokenizer.ggml.bos_token_id")
        eosID = gguf.int("tokenizer.ggml.eos_token_id")
        chatTemplate = gguf.string("tokenizer.chat_template")
        chatTemplateFile = ChatTemplate.ggufSource(file)
    }
}

extension Tokenizer {
    /// llama.cpp's SentencePiece tokenizer (tokenizer.ggml.model "llama": Llama, vicuna, Mistral):
    /// tokens with scores and types, no merges. llama.cpp's llm_tokenizer_spm escapes spaces as "▁",
    /// prefixes one to the text and after every special token (tokenizer.ggml.add_space_prefix,
    /// default true), then repeatedly joins the adjacent pair whose concatenation is a token of the
    /// highest score, and spells what is left outside the vocabulary as <0xXX> byte tokens. That is
    /// BPE whose merges are every split (a, b) of a normal token t into two normal tokens, ranked by
    /// t's score (highest first; equal scores by t's id — convert_hf_to_gguf.py writes −1000 for
    /// every token of a tokenizer.json without tokenizer.model, whose ids follow the merge order;
    /// llama.cpp breaks such ties by position and splits those files unlike their tokenizer.json),
    /// over the legacy Llama pipeline (Prepend "▁" + Replace " " → "▁" on each segment
    /// between added tokens) — which is how it is built here. Control tokens (type 3) are special
    /// added tokens, user-defined ones (4) plain added tokens, both matched on the raw text.
    init(sentencePiece gguf: GGUFFile, tokens: [GGUFValue]) throws(VLMError) {
        let file = gguf.path
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 }
        let scores = gguf.metadata["tokenizer.ggml.scores"]?.arrayValue?.map { $0.doubleValue ?? 0 }
        for (field, count) in [("tokenizer.ggml.token_type", types?.count), ("tokenizer.ggml.scores", scores?.count)] {
            if let count, count != tokens.count {
                throw .malformed(file: file, cause: "\(field) has \(count) entries for \(tokens.count) tokens")
            }
        }
        var vocab: [String: Int] = [:], normal: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        var added: [AddedToken] = []
        var unknown: String?
        for (id, token) in tokens.enumerated() {
            guard let text = token.stringValue else { throw .malformed(file: file, cause: "tokenizer.ggml.tokens[\(id)] is not a string") }
            // token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
            switch types?[id] ?? 1 {
            case 3: added.append(AddedToken(id: id, content: text, special: true))
            case 4: added.append(AddedToken(id: id, content: text, special: false))
            case 1:
                if normal[text] == nil { normal[text] = id }
                if vocab[text] == nil { vocab[text] = id }
            case 2:
                unknown = unknown ?? text
                if vocab[text] == nil { vocab[text] = id }
            default:
                if vocab[text] == nil { vocab[text] = id }
            }
        }
        var candidates: [(score: Double, id: Int, split: Int, a: String, b: String)] = []
        for (text, id) in normal {
            let scalars = Array(text.unicodeScalars)
            guard scalars.count >= 2 else { continue }
            for k in 1..<scalars.count {
                let a = String(String.UnicodeScalarView(scalars[..<k])), b = String(String.UnicodeScalarView(scalars[k...]))
                if normal[a] != nil, normal[b] != nil { candidates.append((scores?[id] ?? 0, id, k, a, b)) }
            }
        }
        candidates.sort { ($0.score, -$0.id, -$0.split) > ($1.score, -$1.id, -$1.split) }
        let spacePrefix = gguf.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
        let bos = gguf.int("tokenizer.ggml.bos_token_id"), eos = gguf.int("tokenizer.ggml.eos_token_id")
        let addBOS = gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? true
        let addEOS = gguf.metadata["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        for (field, id) in [("tokenizer.ggml.bos_token_id", bos), ("tokenizer.ggml.eos_token_id", eos)] {
            if let id, !tokens.indices.contains(id) { throw .malformed(file: file, cause: "\(field) \(id) is outside the \(tokens.count) tokens") }
        }
        let post = PostProcessor(prefix: addBOS ? bos.map { [$0] } ?? [] : [], suffix: addEOS ? eos.map { [$0] } ?? [] : [])
        try self.init(vocabulary: vocab, merges: candidates.map { ($0.a, $0.b) }, addedTokens: added,
                      normalizers: (spacePrefix ? [.prepend("▁")] : []) + [.replace(pattern: " ", content: "▁")], preTokenizers: [],
                      decoders: [.replace(pattern: "▁", content: " "), .byteFallback, .fuse] + (spacePrefix ? [.strip(content: " ", start: 1, stop: 0)] : []),
                      postProcessor: post, byteFallback: true, unknownToken: unknown, fuseUnknown: true, source: file)
        bosID = bos
        eosID = eos
        chatTemplate = gguf.string("tokenizer.chat_template")
        chatTemplateFile = ChatTemplate.ggufSource(file)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

/// A JSON file's top-level object.
func readJSONObject(_ path: String) throws(VLMError) -> [String: Any] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw .unreadable(file: path, cause: "no such file or not readable")
    }
    guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw .malformed(file: path, cause: "not a JSON object")
    }
    return object
}
