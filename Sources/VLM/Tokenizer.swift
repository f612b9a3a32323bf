// The BPE tokenizer as Hugging Face `tokenizers` runs it, in its two shapes: byte-level (SmolLM2 /
// SmolVLM2, Qwen2 / Qwen2.5-VL) and Llama's SentencePiece files with byte fallback (llava-1.5,
// llava-v1.6 vicuna/mistral):
//   1. added tokens with normalized=false are cut out of the raw text, leftmost-longest;
//   2. the normalizers (NFC for Qwen2; Prepend "▁" + Replace " " → "▁" for legacy Llama files) run on
//      each remaining segment, and added tokens with normalized=true are cut out of the normalized text;
//   3. every other segment goes through the pre-tokenizers (Split, Digits, ByteLevel; Metaspace);
//   4. BPE's first symbols: byte-level — each UTF-8 byte as its byte-level character; otherwise each
//      character in the vocabulary, else (byte_fallback) its UTF-8 bytes as `<0xXX>` tokens, else
//      unk_token (runs fused with fuse_unk); then merges by rank;
//   5. decoding: byte-level — token characters back to bytes (text that is not all byte-level
//      characters: its UTF-8); otherwise the decoder chain of TokenDecoder.swift;
//   6. `encode(_:addSpecialTokens: true)` adds the post-processor's tokens (Llama's BOS).
// Built from tokenizer.json (+ tokenizer_config.json for the chat template and special tokens)
// or from GGUF metadata (tokenizer.ggml.*).
import Foundation
import Tensor

/// A token of the `added_tokens` list: matched on text before BPE.
public struct AddedToken: Sendable, Equatable {
    public let id: Int
    public let content: String
    public let special: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    /// Matched on the normalized text (true) or on the raw text before normalization (false).
    public let normalized: Bool

    public init(id: Int, content: String, special: Bool, lstrip: Bool = false, rstrip: Bool = false, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
    }
}

/// Added tokens of one kind (raw or normalized), by first scalar, longest first.
private struct AddedTokenMatcher: Sendable {
    struct Entry: Sendable {
        let id: Int
        let scalars: [Unicode.Scalar]
        let lstrip: Bool
        let rstrip: Bool
    }
    private var byFirst: [Unicode.Scalar: [Entry]] = [:]
    var isEmpty: Bool { byFirst.isEmpty }

    init(_ tokens: [AddedToken]) {
        var table: [Unicode.Scalar: [Entry]] = [:]
        for token in tokens {
            let scalars = Array(token.content.unicodeScalars)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Entry(id: token.id, scalars: scalars, lstrip: token.lstrip, rstrip: token.rstrip))
        }
        byFirst = table.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
    }

    enum Segment { case text(ArraySlice<Unicode.Scalar>), added(Int) }

    /// Cuts the tokens out of `text`, leftmost first and longest first at a position; lstrip/rstrip
    /// take the White_Space next to a token with it (never past the previous token).
    func split(_ text: ArraySlice<Unicode.Scalar>) -> [Segment] {
        guard !isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        var out: [Segment] = []
        var start = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            var matched: Entry?
            if let candidates = byFirst[text[i]] {
                for entry in candidates {
                    let end = i + entry.scalars.count
                    if end <= text.endIndex, text[i..<end].elementsEqual(entry.scalars) { matched = entry; break }
                }
            }
            guard let token = matched else { i += 1; continue }
            var textEnd = i
            if token.lstrip { while textEnd > start, isSpace(text[textEnd - 1]) { textEnd -= 1 } }
            if textEnd > start { out.append(.text(text[start..<textEnd])) }
            out.append(.added(token.id))
            i += token.scalars.count
            if token.rstrip { while i < text.endIndex, isSpace(text[i]) { i += 1 } }
            start = i
        }
        if start < text.endIndex { out.append(.text(text[start...])) }
        return out
    }
}

public struct Tokenizer: Sendable {
    /// Token text (byte-level characters, or the added token's content) by id.
    public let vocabulary: [String]
    public let tokenToID: [String: Int]
    public let addedTokens: [AddedToken]
    public let normalizers: [Normalizer]
    public let preTokenizers: [PreTokenizer]
    /// The decoder chain (`[.byteLevel]` for byte-level files).
    public let decoders: [TokenDecoder]
    /// The tokens `encode(_:addSpecialTokens: true)` adds.
    public let postProcessor: PostProcessor
    /// Ids of begin/end of sequence when the files name them.
    public var bosID: Int?
    public var eosID: Int?
    /// The chat template text shipped with the tokenizer (see ChatTemplate.locate, or the GGUF's), if any.
    public var chatTemplate: String?
    /// The file that template came from (errors name it).
    public var chatTemplateFile: String?

    // (left id, right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    private let byteLevel: Bool           // BPE starts from byte-level characters (a ByteLevel pre-tokenizer)
    private let byteIDs: [Int32]          // id of each byte's byte-level character, -1 if absent
    private let characterIDs: [Unicode.Scalar: Int32]  // single-character tokens (not byte-level)
    private let fallbackIDs: [Int32]?     // id of each byte's `<0xXX>` token (byte_fallback), -1 if absent
    private let ignoreMerges: Bool
    private let modelVocabulary: [String: Int]  // the BPE model's own tokens (ignore_merges looks words up here)
    private let unknownID: Int32?         // id for a byte outside the vocabulary (BPE unk_token), else it is dropped
    private let fuseUnknown: Bool
    private let rawAdded: AddedTokenMatcher
    private let normalizedAdded: AddedTokenMatcher
    private let specialIDs: Set<Int>

    public var count: Int { vocabulary.count }

    /// Assembles a tokenizer; `merges` are pairs of token texts in rank order.
    /// BPE starts from byte-level characters when a pre-tokenizer is ByteLevel, else from characters
    /// (with `byteFallback`, a character outside the vocabulary becomes its `<0xXX>` byte tokens).
    public init(vocabulary: [String: Int], merges: [(String, String)], addedTokens: [AddedToken],
                normalizers: [Normalizer] = [], preTokenizers: [PreTokenizer], decoders: [TokenDecoder]? = nil,
                postProcessor: PostProcessor = PostProcessor(), byteFallback: Bool = false, ignoreMerges: Bool = false,
                unknownToken: String? = nil, fuseUnknown: Bool = false, source: String) throws(VLMError) {
        // tokenizers keeps (matches, and decodes) a normalized added token by its normalized text.
        let addedTokens = addedTokens.map { token in
            guard token.normalized, !normalizers.isEmpty else { return token }
            let content = String(String.UnicodeScalarView(normalizers.apply(Array(token.content.unicodeScalars)[...])))
            return AddedToken(id: token.id, content: content, special: token.special, lstrip: token.lstrip,
                              rstrip: token.rstrip, normalized: true)
        }
        // Ids index a table: each is checked against the vocabulary bound before it is allocated
        // (a hostile id of 6666666658 asked for 6.6 G strings; Int.max overflowed the size).
        let limit = SizeKind.vocabulary.bounds.upperBound
        for (text, id) in vocabulary where id >= limit {
            throw .malformed(file: source, cause: "id \(id) of token '\(text)' is not below \(limit)")
        }
        for token in addedTokens where token.id >= limit {
            throw .malformed(file: source, cause: "id \(token.id) of added token '\(token.content)' is not below \(limit)")
        }
        let size = max(vocabulary.values.max() ?? -1, addedTokens.map(\.id).max() ?? -1) + 1
        var texts = [String](repeating: "", count: size)
        var toID = vocabulary
        for (text, id) in vocabulary {
            guard id >= 0 else { throw .malformed(file: source, cause: "negative id \(id) for token '\(text)'") }
            texts[id] = text
        }
        for token in addedTokens {
            guard token.id >= 0 else { throw .malformed(file: source, cause: "negative id \(token.id) for added token '\(token.content)'") }
            texts[token.id] = token.content
            toID[token.content] = token.id
        }
        var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, pair) in merges.enumerated() {
            guard let a = vocabulary[pair.0], let b = vocabulary[pair.1] else {
                throw .malformed(file: source, cause: "merge \(rank) '\(pair.0) \(pair.1)' uses a token outside the vocabulary")
            }
            guard let m = vocabulary[pair.0 + pair.1] else {
                throw .malformed(file: source, cause: "merge \(rank) '\(pair.0) \(pair.1)' makes a token outside the vocabulary")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if table[key] == nil { table[key] = (Int32(rank), Int32(m)) }
        }
        // An unk_token outside the model's vocabulary is an error in tokenizers only once a byte needs
        // it; with every byte in the vocabulary (the usual byte-level case) it is never used.
        self.unknownID = unknownToken.flatMap { vocabulary[$0] }.map(Int32.init)
        self.fuseUnknown = fuseUnknown
        self.vocabulary = texts
        self.tokenToID = toID
        self.addedTokens = addedTokens
        self.normalizers = normalizers
        self.preTokenizers = preTokenizers
        let byteLevel = preTokenizers.contains { if case .byteLevel = $0 { return true } else { return false } }
            || decoders?.contains(.byteLevel) == true
        self.byteLevel = byteLevel
        self.decoders = decoders ?? (byteLevel ? [.byteLevel] : [])
        self.postProcessor = postProcessor
        self.merges = table
        self.ignoreMerges = ignoreMerges
        self.modelVocabulary = ignoreMerges ? vocabulary : [:]
        self.byteIDs = ByteLevelAlphabet.characters.map { Int32(vocabulary[String($0)] ?? -1) }
        var characters: [Unicode.Scalar: Int32] = [:]
        if !byteLevel {
            for (text, id) in vocabulary where text.unicodeScalars.count == 1 { characters[text.unicodeScalars.first!] = Int32(id) }
        }
        self.characterIDs = characters
        self.fallbackIDs = byteFallback ? (0..<256).map { Int32(vocabulary[String(format: "<0x%02X>", $0)] ?? -1) } : nil
        self.rawAdded = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        self.normalizedAdded = AddedTokenMatcher(addedTokens.filter(\.normalized))
        self.specialIDs = Set(addedTokens.filter(\.special).map(\.id))
    }

    public func id(of token: String) -> Int? { tokenToID[token] }
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    // MARK: Encoding

    /// Token ids of `text`; added tokens in the text are recognised. With `addSpecialTokens`, the
    /// post-processor's tokens go around them (Llama's BOS), as transformers' `tokenizer(text)` does.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        let ids = encode(text)
        return addSpecialTokens ? postProcessor.prefix + ids + postProcessor.suffix : ids
    }

    /// Token ids of `text`; added tokens in the text are recognised (no BOS/EOS is added).
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var cache: [[Unicode.Scalar]: [Int]] = [:]
        let scalars = Array(text.unicodeScalars)
        for segment in rawAdded.split(scalars[...]) {
            switch segment {
            case let .added(id): ids.append(id)
            case let .text(raw):
                let normalized = normalizers.apply(raw)
                for inner in normalizedAdded.split(normalized[...]) {
                    switch inner {
                    case let .added(id): ids.append(id)
                    case let .text(piece):
                        // Metaspace's `first` scheme: only the text that begins the input.
                        let atStart = raw.startIndex == 0 && piece.startIndex == 0
                        var pieces = [Array(piece)]
                        for step in preTokenizers { pieces = step.split(pieces, atStart: atStart) }
                        for piece in pieces where !piece.isEmpty {
                            if let hit = cache[piece] { ids += hit; continue }
                            let pieceIDs = bpe(piece)
                            cache[piece] = pieceIDs
                            ids += pieceIDs
                        }
                    }
                }
            }
        }
        return ids
    }

    /// BPE inside one pre-tokenized piece: merge the lowest-ranked adjacent pair until none is left.
    private func bpe(_ piece: [Unicode.Scalar]) -> [Int] {
        var symbols: [Int32] = []
        var text = ""
        var afterUnknown = false  // fuse_unk joins runs of unknown symbols, not a real token equal to unk_token
        func unknown() {
            guard let unknownID else { return }  // without unk_token, tokenizers drops a symbol outside the vocabulary
            if !(fuseUnknown && afterUnknown) { symbols.append(unknownID) }
            afterUnknown = true
        }
        if byteLevel {
            for scalar in piece {
                for b in String(scalar).utf8 {
                    let id = byteIDs[Int(b)]
                    if id >= 0 { symbols.append(id); afterUnknown = false } else { unknown() }
                    text.append(ByteLevelAlphabet.characters[Int(b)])
                }
            }
        } else {
            for scalar in piece {
                if let id = characterIDs[scalar] {
                    symbols.append(id)
                    afterUnknown = false
                } else if let fallbackIDs, case let bytes = String(scalar).utf8.map({ fallbackIDs[Int($0)] }), !bytes.contains(-1) {
                    symbols += bytes  // tokenizers adds them without ending a run of unknowns
                } else {
                    unknown()
                }
            }
            if ignoreMerges { text = String(String.UnicodeScalarView(piece)) }
        }
        if ignoreMerges, let whole = modelVocabulary[text] { return [whole] }
        while symbols.count > 1 {
            var best = Int32.max, at = -1, merged: Int32 = 0
            for k in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1]))
                if let m = merges[key], m.rank < best { best = m.rank; at = k; merged = m.merged }
            }
            guard at >= 0 else { break }
            // Merge every occurrence of that pair, left to right.
            let a = symbols[at], b = symbols[at + 1]
            var next: [Int32] = []
            next.reserveCapacity(symbols.count)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count, symbols[k] == a, symbols[k + 1] == b {
                    next.append(merged); k += 2
                } else {
                    next.append(symbols[k]); k += 1
                }
            }
            symbols = next
        }
        return symbols.map(Int.init)
    }

    // MARK: Decoding

    /// The bytes a token stands for mid-sequence. Byte-level: as the ByteLevel decoder reads them —
    /// text made only of byte-level characters maps back to its bytes, any other text (e.g. an added
    /// token with a space) is its UTF-8. Otherwise: a `<0xXX>` token (ByteFallback) is its byte, any
    /// other token its text after the chain's Replace / Metaspace steps.
    public func bytes(of id: Int) -> [UInt8] {
        guard id >= 0, id < vocabulary.count else { return [] }
        let text = vocabulary[id]
        guard byteLevel else {
            if decoders.contains(.byteFallback), let byte = TokenDecoder.fallbackByte(text) { return [byte] }
            var token = text
            for step in decoders {
                switch step {
                case .replace, .metaspace: token = step.apply(["", token])[1]  // as a token after the first
                default: break
                }
            }
            return Array(token.utf8)
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {  // scalars, as Rust's chars(), not grapheme clusters
            guard let b = ByteLevelAlphabet.bytes[Character(scalar)] else { return Array(text.utf8) }  // not byte-level text
            out.append(b)
        }
        return out
    }

    /// How the start of a decoded text differs from its tokens' bytes: Metaspace drops the
    /// replacement from the first token (`dropsFirstReplacement`); Strip removes up to
    /// `leadingStrip` leading `stripCharacter`s of the fused text.
    var leadingRule: (dropsFirstReplacement: Character?, leadingStrip: Int, stripCharacter: UInt8) {
        var drop: Character? = nil, strip = 0, character: UInt8 = 0x20
        for step in decoders {
            switch step {
            case let .metaspace(replacement, scheme) where scheme != .never: drop = replacement
            case let .strip(content, start, _): if let a = content.asciiValue { strip = start; character = a }
            default: break
            }
        }
        return (drop, strip, character)
    }

    /// Text of `ids`; byte-level: invalid UTF-8 becomes U+FFFD; otherwise as the decoder chain says.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let kept = ids.filter { !(skipSpecialTokens && specialIDs.contains($0)) }
        if byteLevel {
            var bytes: [UInt8] = []
            for id in kept { bytes += self.bytes(of: id) }
            return String(decoding: bytes, as: UTF8.self)
        }
        var tokens = kept.map { $0 >= 0 && $0 < vocabulary.count ? vocabulary[$0] : "" }
        for step in decoders { tokens = step.apply(tokens) }
        return tokens.joined()
    }
}

/// Turns a stream of token ids into text without ever splitting a UTF-8 character: bytes of an
/// unfinished character wait for the next token.
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var pending: [UInt8] = []
    private var first = true
    private var stripLeft: Int

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        self.stripLeft = tokenizer.leadingRule.leadingStrip
    }

    /// The text that `id` completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        let rule = tokenizer.leadingRule
        var bytes = tokenizer.bytes(of: id)
        if first, let replacement = rule.dropsFirstReplacement, id >= 0, id < tokenizer.count {
            bytes = Array(String(tokenizer.vocabulary[id].filter { $0 != replacement }).utf8)
        }
        first = false
        // Strip's leading characters of the whole text, however many tokens they span.
        while stripLeft > 0, let b = bytes.first, pending.isEmpty {
            guard b == rule.stripCharacter else { stripLeft = 0; break }
            bytes.removeFirst()
            stripLeft -= 1
        }
        if !bytes.isEmpty { stripLeft = 0 }
        pending += bytes
        let cut = completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is still held back (an unfinished character comes out as U+FFFD).
    public mutating func finish() -> String {
        defer { pending = [] }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }
}

/// Length of the prefix of `bytes` that ends on a character boundary: a trailing lead byte whose
/// continuation bytes have not all arrived is held back; anything else (even invalid) goes out.
func completePrefixLength(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    var k = n - 1
    // Walk back over at most 3 continuation bytes to the lead byte of the last character.
    while k >= 0, n - k <= 4, bytes[k] & 0xC0 == 0x80 { k -= 1 }
    guard k >= 0, n - k <= 4 else { return n }
    let lead = bytes[k]
    let need: Int
    if lead & 0xE0 == 0xC0 { need = 2 } else if lead & 0xF0 == 0xE0 { need = 3 } else if lead & 0xF8 == 0xF0 { need = 4 } else { return n }
    return n - k < need ? k : n
}
