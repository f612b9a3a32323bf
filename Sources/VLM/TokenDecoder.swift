// Decoders and post-processors of Hugging Face tokenizer.json.
//
// Decoders turn token texts back into text. Byte-level files (SmolLM2, Qwen2) name `ByteLevel`: each
// token's characters map back to bytes (Tokenizer.bytes(of:)). Llama's SentencePiece files
// (llava-1.5, llava-v1.6 vicuna/mistral) name a chain, run in order over the list of token texts:
//   Replace("▁" → " ")  on each token;
//   ByteFallback        runs of `<0xXX>` tokens become the text of their bytes, or one U+FFFD per
//                       byte when those bytes are not valid UTF-8;
//   Fuse                all tokens joined into one;
//   Strip(" ", 1, 0)    up to `start` leading (and `stop` trailing) copies of the character removed
//                       from each token — after Fuse, the one space the normalizer put in front;
// or `Metaspace`, which turns the replacement into " " and drops it from the first token.
//
// The post-processor says which special tokens `encode(_:addSpecialTokens: true)` adds around the
// text: Llama's TemplateProcessing puts `<s>` first; ByteLevel adds none.
import Foundation

/// One decoding step, as tokenizer.json names it.
public enum TokenDecoder: Sendable, Equatable {
    case byteLevel
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: Character, start: Int, stop: Int)
    case metaspace(replacement: Character, prependScheme: PreTokenizer.PrependScheme)

    /// Reads a tokenizer.json `decoder` object (null means none).
    static func parse(_ json: Any?, file: String) throws(VLMError) -> [TokenDecoder] {
        guard let object = json as? [String: Any] else {
            if json == nil || json is NSNull { return [] }
            throw .malformed(file: file, cause: "decoder is not an object")
        }
        let type = object["type"] as? String ?? "?"
        switch type {
        case "ByteLevel": return [.byteLevel]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Replace":
            let (pattern, content) = try replaceStep(object, file: file, kind: "decoder")
            return [.replace(pattern: pattern, content: content)]
        case "Strip":
            guard let text = object["content"] as? String, text.count == 1, let content = text.first else {
                throw .malformed(file: file, cause: "decoder Strip content is not one character")
            }
            let start = object["start"] as? Int ?? 0, stop = object["stop"] as? Int ?? 0
            guard (0...1024).contains(start), (0...1024).contains(stop) else {
                throw .malformed(file: file, cause: "decoder Strip start \(start) / stop \(stop) outside 0...1024")
            }
            return [.strip(content: content, start: start, stop: stop)]
        case "Metaspace":
            let pre = try PreTokenizer.parse(object.merging(["type": "Metaspace"]) { $1 }, file: file)
            guard case let .metaspace(replacement, scheme, _)? = pre.first else { return [] }
            return [.metaspace(replacement: Character(replacement), prependScheme: scheme)]
        case "Sequence":
            guard let steps = object["decoders"] as? [Any] else {
                throw .malformed(file: file, cause: "decoder Sequence without 'decoders'")
            }
            var out: [TokenDecoder] = []
            for step in steps { out += try parse(step, file: file) }
            return out
        default:
            throw .unsupported(file: file, feature: "decoder '\(type)' (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
        }
    }

    /// The byte a `<0xXX>` token stands for (ByteFallback's test: six characters, two hex digits).
    static func fallbackByte(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }

    /// This step over the list of token texts.
    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            return tokens  // handled on bytes by Tokenizer.decode
        case let .replace(pattern, content):
            return tokens.map { $0.replacingAll(pattern, with: content) }
        case .byteFallback:
            var out: [String] = [], pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    out.append(text)
                } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = Self.fallbackByte(token) { pending.append(byte) } else { flush(); out.append(token) }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { token in
                var chars = Array(token)
                var cut = 0
                while cut < start, cut < chars.count, chars[cut] == content { cut += 1 }
                chars.removeFirst(cut)
                var end = 0
                while end < stop, let last = chars.last, last == content { chars.removeLast(); end += 1 }
                return String(chars)
            }
        case let .metaspace(replacement, scheme):
            return tokens.enumerated().map { i, token in
                let dropFirst = i == 0 && scheme != .never
                return String(token.compactMap { c in c == replacement ? (dropFirst ? nil : " ") : c })
            }
        }
    }
}

/// The special tokens `encode(_:addSpecialTokens: true)` puts around a single text.
public struct PostProcessor: Sendable, Equatable {
    public var prefix: [Int] = []
    public var suffix: [Int] = []

    public init(prefix: [Int] = [], suffix: [Int] = []) {
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Reads a tokenizer.json `post_processor` (null and ByteLevel add nothing).
    static func parse(_ json: Any?, file: String) throws(VLMError) -> PostProcessor {
        guard let object = json as? [String: Any] else {
            if json == nil || json is NSNull { return PostProcessor() }
            throw .malformed(file: file, cause: "post_processor is not an object")
        }
        let type = object["type"] as? String ?? "?"
        switch type {
        case "ByteLevel":
            return PostProcessor()
        case "Sequence":
            var out = PostProcessor()
            for step in object["processors"] as? [Any] ?? [] {
                let next = try parse(step, file: file)
                out.prefix += next.prefix
                out.suffix = next.suffix + out.suffix
            }
            return out
        case "TemplateProcessing":
            guard let single = object["single"] as? [[String: Any]] else {
                throw .missingField(file: file, field: "post_processor.single")
            }
            let specials = object["special_tokens"] as? [String: Any] ?? [:]
            var out = PostProcessor(), seenSequence = false
            for item in single {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String else {
                    throw .malformed(file: file, cause: "post_processor.single item is neither Sequence nor SpecialToken")
                }
                guard let entry = specials[name] as? [String: Any], let ids = entry["ids"] as? [Int] else {
                    throw .malformed(file: file, cause: "post_processor special token '\(name)' has no ids in special_tokens")
                }
                if seenSequence { out.suffix += ids } else { out.prefix += ids }
            }
            guard seenSequence else { throw .malformed(file: file, cause: "post_processor.single has no Sequence") }
            return out
        default:
            throw .unsupported(file: file, feature: "post_processor '\(type)' (supported: TemplateProcessing, ByteLevel, Sequence)")
        }
    }
}
