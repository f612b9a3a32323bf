// Byte-level BPE tokenizer as Hugging Face `tokenizers` runs it for SmolLM2 / SmolVLM2:
//   1. added tokens (special or not) are cut out of the text first, leftmost-longest;
//   2. every other segment goes through the pre-tokenizers (Digits, ByteLevel regex);
//   3. each piece's UTF-8 bytes become byte-level characters and BPE merges them by rank;
//   4. decoding maps token characters back to bytes (added tokens: their text) and reads UTF-8.
// Built from tokenizer.json (+ tokenizer_config.json for the chat template and special tokens)
// or from GGUF metadata (tokenizer.ggml.*).
import Foundation

/// A token of the `added_tokens` list: matched on raw text before BPE.
public struct AddedToken: Sendable, Equatable {
    public let id: Int
    public let content: String
    public let special: Bool
    public let lstrip: Bool
    public let rstrip: Bool
}

public struct Tokenizer: Sendable {
    /// Token text (byte-level characters, or the added token's content) by id.
    public let vocabulary: [String]
    public let tokenToID: [String: Int]
    public let addedTokens: [AddedToken]
    public let preTokenizers: [PreTokenizer]
    /// Ids of begin/end of sequence when the files name them.
    public var bosID: Int?
    public var eosID: Int?
    /// The chat template text shipped with the tokenizer (tokenizer_config.json or GGUF), if any.
    public var chatTemplate: String?

    // (left id, right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    private let byteIDs: [Int32]          // id of each byte's byte-level character, -1 if absent
    private let ignoreMerges: Bool
    private let addedByFirstByte: [UInt8: [AddedToken]]  // longest first
    private let addedIDs: Set<Int>
    private let specialIDs: Set<Int>

    public var count: Int { vocabulary.count }

    /// Assembles a tokenizer; `merges` are pairs of token texts in rank order.
    public init(vocabulary: [String: Int], merges: [(String, String)], addedTokens: [AddedToken],
                preTokenizers: [PreTokenizer], ignoreMerges: Bool = false, source: String) throws(VLMError) {
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
        self.vocabulary = texts
        self.tokenToID = toID
        self.addedTokens = addedTokens
        self.preTokenizers = preTokenizers
        self.merges = table
        self.ignoreMerges = ignoreMerges
        self.byteIDs = ByteLevelAlphabet.characters.map { Int32(vocabulary[String($0)] ?? -1) }
        var byFirst: [UInt8: [AddedToken]] = [:]
        for token in addedTokens where !token.content.isEmpty {
            byFirst[token.content.utf8.first!, default: []].append(token)
        }
        self.addedByFirstByte = byFirst.mapValues { $0.sorted { $0.content.utf8.count > $1.content.utf8.count } }
        self.addedIDs = Set(addedTokens.map(\.id))
        self.specialIDs = Set(addedTokens.filter(\.special).map(\.id))
    }

    public func id(of token: String) -> Int? { tokenToID[token] }
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    // MARK: Encoding

    /// Token ids of `text`; added tokens in the text are recognised (no BOS/EOS is added).
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var cache: [[Unicode.Scalar]: [Int]] = [:]
        for segment in splitOnAddedTokens(Array(text.utf8)) {
            switch segment {
            case let .added(id): ids.append(id)
            case let .text(bytes):
                let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
                var pieces = [scalars]
                for step in preTokenizers { pieces = step.split(pieces) }
                for piece in pieces {
                    if let hit = cache[piece] { ids += hit; continue }
                    let pieceIDs = bpe(piece)
                    cache[piece] = pieceIDs
                    ids += pieceIDs
                }
            }
        }
        return ids
    }

    private enum Segment { case text([UInt8]), added(Int) }

    /// Cuts added tokens out of the text, leftmost first and longest first at a position.
    private func splitOnAddedTokens(_ bytes: [UInt8]) -> [Segment] {
        guard !addedByFirstByte.isEmpty else { return bytes.isEmpty ? [] : [.text(bytes)] }
        var out: [Segment] = []
        var start = 0, i = 0
        while i < bytes.count {
            var matched: AddedToken?
            if let candidates = addedByFirstByte[bytes[i]] {
                for token in candidates {
                    let t = token.content.utf8
                    if i + t.count <= bytes.count, bytes[i..<(i + t.count)].elementsEqual(t) { matched = token; break }
                }
            }
            guard let token = matched else { i += 1; continue }
            var textEnd = i
            if token.lstrip { while textEnd > start, isASCIISpace(bytes[textEnd - 1]) { textEnd -= 1 } }
            if textEnd > start { out.append(.text(Array(bytes[start..<textEnd]))) }
            out.append(.added(token.id))
            i += token.content.utf8.count
            if token.rstrip { while i < bytes.count, isASCIISpace(bytes[i]) { i += 1 } }
            start = i
        }
        if start < bytes.count { out.append(.text(Array(bytes[start...]))) }
        return out
    }

    private func isASCIISpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// BPE inside one pre-tokenized piece: merge the lowest-ranked adjacent pair until none is left.
    private func bpe(_ piece: [Unicode.Scalar]) -> [Int] {
        var symbols: [Int32] = []
        var text = ""
        for scalar in piece {
            for b in String(scalar).utf8 {
                let id = byteIDs[Int(b)]
                if id >= 0 { symbols.append(id) }  // a byte outside the vocabulary is dropped, as tokenizers does without unk
                text.append(ByteLevelAlphabet.characters[Int(b)])
            }
        }
        if ignoreMerges, let whole = tokenToID[text] { return [whole] }
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

    /// The bytes a token stands for (added tokens: their UTF-8 text).
    public func bytes(of id: Int) -> [UInt8] {
        guard id >= 0, id < vocabulary.count else { return [] }
        let text = vocabulary[id]
        if addedIDs.contains(id) { return Array(text.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for c in text {
            guard let b = ByteLevelAlphabet.bytes[c] else { return Array(text.utf8) }  // not byte-level text
            out.append(b)
        }
        return out
    }

    /// Text of `ids`; invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) { bytes += self.bytes(of: id) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Turns a stream of token ids into text without ever splitting a UTF-8 character: bytes of an
/// unfinished character wait for the next token.
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that `id` completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        pending += tokenizer.bytes(of: id)
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
