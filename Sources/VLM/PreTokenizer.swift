// Pre-tokenizers of Hugging Face tokenizer.json that byte-level BPE models use, Metaspace (Llama /
// Mistral SentencePiece files converted since tokenizers 0.14), and the byte-level alphabet. A
// pre-tokenizer cuts a text segment into pieces; BPE then runs inside each piece.
//
// The word regexes these models ship are matched by hand on Unicode scalars (a regex engine would
// have to follow Oniguruma's semantics exactly, and a hand-written scanner is many times faster):
//   GPT-2 (ByteLevel's own split):
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   GPT-4 style (Qwen2 with \p{N}; Llama 3 / cl100k with \p{N}{1,3}), in Split:
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// \p{L} is a letter category, \p{N} a number category, \s the White_Space property. Any other
// Split regex is rejected as unsupported.
import Foundation

/// One step of pre-tokenization, as tokenizer.json names it.
public enum PreTokenizer: Sendable, Equatable {
    /// Digits: with `individual`, each numeric character is its own piece; otherwise runs of them.
    case digits(individual: Bool)
    /// ByteLevel: optional prefix space, then (with `useRegex`) GPT-2's split.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Split: the pattern's matches (or, with `invert`, what lies between them) are delimiters,
    /// handled as `behavior` says.
    case split(pattern: SplitPattern, behavior: SplitBehavior, invert: Bool)
    /// Metaspace: every " " becomes `replacement`; the piece gets `replacement` in front as
    /// `prependScheme` says; with `split`, the text is cut before each `replacement`.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)

    /// When Metaspace puts its replacement in front of a piece not starting with it.
    public enum PrependScheme: String, Sendable, Equatable {
        /// Every piece.
        case always
        /// Only a piece that starts the input (not one after an added token).
        case first
        case never
    }

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
        case "Split":
            let name = object["behavior"] as? String ?? "?"
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw .unsupported(file: file, feature: "Split behavior '\(name)' (supported: \(SplitBehavior.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let pattern = try SplitPattern(object["pattern"], file: file)
            return [.split(pattern: pattern, behavior: behavior, invert: object["invert"] as? Bool ?? false)]
        case "Metaspace":
            guard let text = object["replacement"] as? String, text.unicodeScalars.count == 1, let replacement = text.unicodeScalars.first else {
                throw .malformed(file: file, cause: "pre_tokenizer Metaspace replacement is not one character")
            }
            // Files written before tokenizers 0.14 say add_prefix_space (true: always) and always split.
            let scheme: PrependScheme
            if let name = object["prepend_scheme"] as? String {
                guard let known = PrependScheme(rawValue: name) else {
                    throw .unsupported(file: file, feature: "Metaspace prepend_scheme '\(name)' (supported: always, first, never)")
                }
                scheme = known
            } else {
                scheme = object["add_prefix_space"] as? Bool ?? true ? .always : .never
            }
            return [.metaspace(replacement: replacement, prependScheme: scheme, split: object["split"] as? Bool ?? true)]
        default:
            throw .unsupported(file: file, feature: "pre_tokenizer '\(type)' (supported: Sequence, Split, Digits, ByteLevel, Metaspace)")
        }
    }

    /// Splits every piece further; `atStart`: the first piece begins the input (Metaspace's `first`).
    func split(_ pieces: [[Unicode.Scalar]], atStart: Bool = false) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        out.reserveCapacity(pieces.count)
        for (k, piece) in pieces.enumerated() where !piece.isEmpty {
            switch self {
            case let .metaspace(replacement, scheme, split):
                var text = piece.map { $0 == " " ? replacement : $0 }
                let prepend = scheme == .always || (scheme == .first && atStart && k == 0)
                if prepend, text.first != replacement { text.insert(replacement, at: 0) }
                if split {
                    splitPieces(text, pattern: .literal(String(replacement)), behavior: .mergedWithNext, invert: false, into: &out)
                } else {
                    out.append(text)
                }
            case let .digits(individual):
                splitDigits(piece, individual: individual, into: &out)
            case let .byteLevel(addPrefixSpace, useRegex):
                var text = piece
                if addPrefixSpace, text.first != " " { text.insert(" ", at: 0) }
                if useRegex { splitGPT2(text, into: &out) } else { out.append(text) }
            case let .split(pattern, behavior, invert):
                splitPieces(piece, pattern: pattern, behavior: behavior, invert: invert, into: &out)
            }
        }
        return out
    }
}

/// What Split does with delimiters (tokenizers' SplitDelimiterBehavior; on "the-final--countdown" split on "-"):
public enum SplitBehavior: String, Sendable, Equatable, CaseIterable {
    /// the, final, countdown
    case removed = "Removed"
    /// the, -, final, -, -, countdown
    case isolated = "Isolated"
    /// the-, final-, -, countdown
    case mergedWithPrevious = "MergedWithPrevious"
    /// the, -final, -, -countdown
    case mergedWithNext = "MergedWithNext"
    /// the, -, final, --, countdown
    case contiguous = "Contiguous"
}

/// A Split pattern: a literal string, or one of the word regexes recognised by its exact text.
public enum SplitPattern: Sendable, Equatable {
    /// `{"String": …}`: every non-overlapping occurrence, left to right.
    case literal(String)
    /// GPT-2's word regex.
    case gpt2Words
    /// The GPT-4-style word regex; numbers come in runs of at most `digitRun` (Qwen2: 1, Llama 3: 3).
    case gpt4Words(digitRun: Int)

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init(_ json: Any?, file: String) throws(VLMError) {
        let object = json as? [String: Any] ?? [:]
        if let literal = object["String"] as? String {
            // "" becomes a regex of empty matches in tokenizers, which nothing ships.
            guard !literal.isEmpty else { throw .unsupported(file: file, feature: "Split with an empty String pattern") }
            self = .literal(literal)
        } else if let regex = object["Regex"] as? String {
            switch regex {
            case Self.gpt2Regex: self = .gpt2Words
            case Self.qwen2Regex: self = .gpt4Words(digitRun: 1)
            case Self.llama3Regex: self = .gpt4Words(digitRun: 3)
            default:
                throw .unsupported(file: file, feature: "Split regex \(regex.debugDescription) (supported: the GPT-2, Qwen2 and Llama 3 word patterns)")
            }
        } else {
            throw .malformed(file: file, cause: "Split pattern is neither {\"String\": …} nor {\"Regex\": …}")
        }
    }

    /// tokenizers' find_matches: ranges covering all of `text` in order, each flagged as a match or not.
    func spans(_ text: [Unicode.Scalar]) -> [(range: Range<Int>, isMatch: Bool)] {
        let n = text.count
        var out: [(range: Range<Int>, isMatch: Bool)] = []
        switch self {
        case .gpt2Words, .gpt4Words:
            // These patterns match every character, so their matches tile the text.
            var i = 0
            while i < n {
                let end: Int
                switch self {
                case let .gpt4Words(digitRun): end = gpt4MatchEnd(text, from: i, digitRun: digitRun)
                default: end = gpt2MatchEnd(text, from: i)
                }
                out.append((i..<end, true))
                i = end
            }
        case let .literal(string):
            let needle = Array(string.unicodeScalars)
            var start = 0, i = 0
            while i + needle.count <= n {
                if text[i] == needle[0], text[i..<(i + needle.count)].elementsEqual(needle) {
                    if start < i { out.append((start..<i, false)) }
                    out.append((i..<(i + needle.count), true))
                    i += needle.count
                    start = i
                } else {
                    i += 1
                }
            }
            if start < n { out.append((start..<n, false)) }
        }
        return out
    }
}

/// tokenizers' NormalizedString.split: spans → pieces, by behavior.
private func splitPieces(_ text: [Unicode.Scalar], pattern: SplitPattern, behavior: SplitBehavior, invert: Bool,
                         into out: inout [[Unicode.Scalar]]) {
    var spans = pattern.spans(text)
    if invert { for k in spans.indices { spans[k].isMatch.toggle() } }
    var pieces: [Range<Int>] = []
    pieces.reserveCapacity(spans.count)
    var previousMatch = false
    switch behavior {
    case .isolated:
        pieces = spans.map(\.range)
    case .removed:
        pieces = spans.filter { !$0.isMatch }.map(\.range)
    case .contiguous:
        for span in spans {
            if span.isMatch == previousMatch, let last = pieces.last {
                pieces[pieces.count - 1] = last.lowerBound..<span.range.upperBound
            } else {
                pieces.append(span.range)
            }
            previousMatch = span.isMatch
        }
    case .mergedWithPrevious:
        for span in spans {
            if span.isMatch, !previousMatch, let last = pieces.last {
                pieces[pieces.count - 1] = last.lowerBound..<span.range.upperBound
            } else {
                pieces.append(span.range)
            }
            previousMatch = span.isMatch
        }
    case .mergedWithNext:
        for span in spans.reversed() {
            if span.isMatch, !previousMatch, let last = pieces.last {
                pieces[pieces.count - 1] = span.range.lowerBound..<last.upperBound
            } else {
                pieces.append(span.range)
            }
            previousMatch = span.isMatch
        }
        pieces.reverse()
    }
    for range in pieces where !range.isEmpty { out.append(Array(text[range])) }
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
    var i = 0
    while i < text.count {
        let end = gpt2MatchEnd(text, from: i)
        out.append(Array(text[i..<end]))
        i = end
    }
}

@inline(__always) private func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

@inline(__always) private func isLineBreak(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }

@inline(__always) private func run(_ text: [Unicode.Scalar], from j: Int, while test: (Unicode.Scalar) -> Bool) -> Int {
    var k = j
    while k < text.count, test(text[k]) { k += 1 }
    return k
}

/// Whitespace from `i` (text[i] is whitespace): all of it at the end of the text, else all but the
/// last character, which then leads the next piece (\s+(?!\S)); a single one stands alone (\s+).
@inline(__always) private func spaceRunEnd(_ text: [Unicode.Scalar], from i: Int) -> Int {
    let k = run(text, from: i, while: isSpace)
    return (k == text.count || k - i == 1) ? k : k - 1
}

/// End of GPT-2's regex match at `i`.
func gpt2MatchEnd(_ text: [Unicode.Scalar], from i: Int) -> Int {
    let n = text.count
    let c = text[i]
    // Contractions.
    if c == "'", i + 1 < n {
        let a = text[i + 1]
        if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
        if i + 2 < n {
            let b = text[i + 2]
            if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
        }
    }
    // An optional single space before a letter, number or symbol run.
    let body = (c == " " && i + 1 < n && !isSpace(text[i + 1])) ? i + 1 : i
    let first = text[body]
    if isLetter(first) { return run(text, from: body, while: isLetter) }
    if isNumber(first) { return run(text, from: body, while: isNumber) }
    if !isSpace(first) { return run(text, from: body, while: isOther) }
    return spaceRunEnd(text, from: i)
}

/// End of the GPT-4-style regex match at `i`, alternatives tried in the regex's order.
func gpt4MatchEnd(_ text: [Unicode.Scalar], from i: Int, digitRun: Int) -> Int {
    let n = text.count
    let c = text[i]
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == "'", i + 1 < n {
        let a = caseFolded(text[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
        if i + 2 < n {
            let b = caseFolded(text[i + 2])
            if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if isLetter(c) { return run(text, from: i, while: isLetter) }
    if !isLineBreak(c), !isNumber(c), i + 1 < n, isLetter(text[i + 1]) { return run(text, from: i + 1, while: isLetter) }
    // \p{N}{1,digitRun}
    if isNumber(c) {
        var k = i + 1
        while k < n, k - i < digitRun, isNumber(text[k]) { k += 1 }
        return k
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let body = (c == " " && i + 1 < n && isOther(text[i + 1])) ? i + 1 : i
    if isOther(text[body]) {
        return run(text, from: run(text, from: body, while: isOther), while: isLineBreak)
    }
    // c is whitespace. \s*[\r\n]+ ends at the run's last line break, if it has one.
    let k = run(text, from: i, while: isSpace)
    var lastBreak = k - 1
    while lastBreak >= i, !isLineBreak(text[lastBreak]) { lastBreak -= 1 }
    if lastBreak >= i { return lastBreak + 1 }
    return spaceRunEnd(text, from: i)
}

/// Simple case folding as far as the contraction letters need it: A–Z, and ſ (U+017F), which
/// Oniguruma folds to s ("it'ſx" splits as "it", "'ſ", "x").
@inline(__always) private func caseFolded(_ s: Unicode.Scalar) -> Unicode.Scalar {
    if s.value >= 0x41 && s.value <= 0x5A { return Unicode.Scalar(UInt8(s.value + 0x20)) }
    return s == "\u{017F}" ? "s" : s
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
