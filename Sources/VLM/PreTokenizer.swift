// Pre-tokenizers of Hugging Face tokenizer.json that byte-level BPE models use, and the byte-level
// alphabet. A pre-tokenizer cuts a text segment into pieces; BPE then runs inside each piece.
//
// ByteLevel's regex (GPT-2's) is matched by hand on Unicode scalars:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// \p{L} is a letter category, \p{N} a number category, \s the White_Space property.
import Foundation

/// One step of pre-tokenization, as tokenizer.json names it.
public enum PreTokenizer: Sendable, Equatable {
    /// Digits: with `individual`, each numeric character is its own piece; otherwise runs of them.
    case digits(individual: Bool)
    /// ByteLevel: optional prefix space, then (with `useRegex`) GPT-2's split.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)

    /// Reads a tokenizer.json `pre_tokenizer` object (null means none).
    static func parse(_ json: Any?, file: String) throws(VLMError) -> [PreTokenizer] {
        guard let object = json as? [String: Any] else {
            if json == nil || json is NSNull { return [] }
            throw .malformed(file: file, cause: "pre_tokenizer is not an object")
        }
        let type = object["type"] as? String ?? "?"
        switch type {
        case "Sequence":
            guard let steps = object["pretokenizers"] as? [Any] else {
                throw .malformed(file: file, cause: "pre_tokenizer Sequence without 'pretokenizers'")
            }
            var out: [PreTokenizer] = []
            for step in steps { out += try parse(step, file: file) }
            return out
        case "Digits":
            return [.digits(individual: object["individual_digits"] as? Bool ?? false)]
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: object["add_prefix_space"] as? Bool ?? false,
                               useRegex: object["use_regex"] as? Bool ?? true)]
        default:
            throw .unsupported(file: file, feature: "pre_tokenizer '\(type)' (supported: Sequence, Digits, ByteLevel)")
        }
    }

    /// Splits every piece further.
    func split(_ pieces: [[Unicode.Scalar]]) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        out.reserveCapacity(pieces.count)
        for piece in pieces where !piece.isEmpty {
            switch self {
            case let .digits(individual):
                splitDigits(piece, individual: individual, into: &out)
            case let .byteLevel(addPrefixSpace, useRegex):
                var text = piece
                if addPrefixSpace, text.first != " " { text.insert(" ", at: 0) }
                if useRegex { splitGPT2(text, into: &out) } else { out.append(text) }
            }
        }
        return out
    }
}

@inline(__always) func isLetter(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

@inline(__always) func isNumber(_ s: Unicode.Scalar) -> Bool {
    switch s.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

@inline(__always) func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

private func splitDigits(_ text: [Unicode.Scalar], individual: Bool, into out: inout [[Unicode.Scalar]]) {
    var start = 0
    var i = 0
    while i < text.count {
        guard isNumber(text[i]) else { i += 1; continue }
        if start < i { out.append(Array(text[start..<i])) }
        var end = i + 1
        if !individual { while end < text.count, isNumber(text[end]) { end += 1 } }
        out.append(Array(text[i..<end]))
        i = end
        start = end
    }
    if start < text.count { out.append(Array(text[start...])) }
}

private func splitGPT2(_ text: [Unicode.Scalar], into out: inout [[Unicode.Scalar]]) {
    let n = text.count
    var i = 0
    func run(from j: Int, while test: (Unicode.Scalar) -> Bool) -> Int {
        var k = j
        while k < n, test(text[k]) { k += 1 }
        return k
    }
    let isOther: (Unicode.Scalar) -> Bool = { !isSpace($0) && !isLetter($0) && !isNumber($0) }
    while i < n {
        let c = text[i]
        // Contractions.
        if c == "'", i + 1 < n {
            let a = text[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" {
                out.append([c, a]); i += 2; continue
            }
            if i + 2 < n {
                let b = text[i + 2]
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                    out.append([c, a, b]); i += 3; continue
                }
            }
        }
        // An optional single space before a letter, number or symbol run.
        let body = (c == " " && i + 1 < n && !isSpace(text[i + 1])) ? i + 1 : i
        let first = text[body]
        var end: Int
        if isLetter(first) {
            end = run(from: body, while: isLetter)
        } else if isNumber(first) {
            end = run(from: body, while: isNumber)
        } else if !isSpace(first) {
            end = run(from: body, while: isOther)
        } else {
            // Whitespace: all of it at the end of the text, else all but the last character
            // (which then leads the next piece); a single one stands alone.
            let k = run(from: i, while: isSpace)
            end = (k == n || k - i == 1) ? k : k - 1
        }
        out.append(Array(text[i..<end]))
        i = end
    }
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the other 68 to U+0100 upwards, in byte order.
enum ByteLevelAlphabet {
    static let characters: [Character] = {
        var printable = Set<Int>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { printable.formUnion(r) }
        var next = 0
        return (0..<256).map { b -> Character in
            if printable.contains(b) { return Character(Unicode.Scalar(UInt8(b))) }
            defer { next += 1 }
            return Character(Unicode.Scalar(UInt32(256 + next))!)
        }
    }()

    static let bytes: [Character: UInt8] = {
        var map: [Character: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c] = UInt8(b) }
        return map
    }()
}
