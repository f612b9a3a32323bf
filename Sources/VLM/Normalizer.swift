// Normalizers of Hugging Face tokenizer.json: the Unicode normal forms (Qwen2 ships NFC), and the
// Prepend / Replace pair of Llama's SentencePiece files ("legacy" llava-1.5, llava-v1.6: prepend "▁",
// then every " " becomes "▁"). They run on the text between added tokens, before pre-tokenization;
// tokens marked normalized=false are cut out of the raw text first, so they are never changed by
// them — and every such segment is normalized on its own (Prepend puts a "▁" before each, as
// `tokenizers` does).
import Foundation

/// One normalization step, as tokenizer.json names it.
public enum Normalizer: Sendable, Equatable {
    case nfc, nfd, nfkc, nfkd
    /// Prepend: the text, when not empty, gets this prefix.
    case prepend(String)
    /// Replace with a literal pattern: every non-overlapping occurrence, left to right.
    case replace(pattern: String, content: String)

    /// Reads a tokenizer.json `normalizer` object (null means none).
    static func parse(_ json: Any?, file: String) throws(VLMError) -> [Normalizer] {
        guard let object = json as? [String: Any] else {
            if json == nil || json is NSNull { return [] }
            throw .malformed(file: file, cause: "normalizer is not an object")
        }
        let type = object["type"] as? String ?? "?"
        switch type {
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKC": return [.nfkc]
        case "NFKD": return [.nfkd]
        case "Prepend":
            guard let prefix = object["prepend"] as? String else { throw .missingField(file: file, field: "normalizer Prepend.prepend") }
            return prefix.isEmpty ? [] : [.prepend(prefix)]
        case "Replace":
            let (pattern, content) = try replaceStep(object, file: file, kind: "normalizer")
            return [.replace(pattern: pattern, content: content)]
        case "Sequence":
            guard let steps = object["normalizers"] as? [Any] else {
                throw .malformed(file: file, cause: "normalizer Sequence without 'normalizers'")
            }
            var out: [Normalizer] = []
            for step in steps { out += try parse(step, file: file) }
            return out
        default:
            throw .unsupported(file: file, feature: "normalizer '\(type)' (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)")
        }
    }

    /// True for the Unicode forms, which leave ASCII as it is.
    var isUnicodeForm: Bool {
        switch self {
        case .nfc, .nfd, .nfkc, .nfkd: return true
        case .prepend, .replace: return false
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case let .prepend(prefix): return text.isEmpty ? text : prefix + text
        case let .replace(pattern, content):
            return String(String.UnicodeScalarView(replacingLiteral(Array(text.unicodeScalars),
                                                                    Array(pattern.unicodeScalars), Array(content.unicodeScalars))))
        }
    }
}

/// The String pattern and content of a Replace step (normalizer or decoder); a Regex pattern is refused.
func replaceStep(_ object: [String: Any], file: String, kind: String) throws(VLMError) -> (String, String) {
    guard let content = object["content"] as? String else { throw .missingField(file: file, field: "\(kind) Replace.content") }
    let pattern = object["pattern"] as? [String: Any] ?? [:]
    guard let literal = pattern["String"] as? String else {
        if pattern["Regex"] != nil { throw .unsupported(file: file, feature: "\(kind) Replace with a Regex pattern (only String)") }
        throw .malformed(file: file, cause: "\(kind) Replace pattern is not {\"String\": …}")
    }
    guard !literal.isEmpty else { throw .unsupported(file: file, feature: "\(kind) Replace with an empty pattern") }
    return (literal, content)
}

/// `text` with every non-overlapping occurrence of `pattern` (non-empty), left to right, replaced.
func replacingLiteral(_ text: [Unicode.Scalar], _ pattern: [Unicode.Scalar], _ content: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard let first = pattern.first, text.count >= pattern.count else { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
        if text[i] == first, i + pattern.count <= text.count, text[i..<(i + pattern.count)].elementsEqual(pattern) {
            out += content
            i += pattern.count
        } else {
            out.append(text[i])
            i += 1
        }
    }
    return out
}

extension Array where Element == Normalizer {
    /// The scalars after every step; ASCII is left as it is by the four Unicode forms, so it skips Foundation.
    func apply(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var text = [Unicode.Scalar](scalars)
        for step in self {
            switch step {
            case let .prepend(prefix):
                if !text.isEmpty { text.insert(contentsOf: prefix.unicodeScalars, at: 0) }
            case let .replace(pattern, content):
                text = replacingLiteral(text, [Unicode.Scalar](pattern.unicodeScalars), [Unicode.Scalar](content.unicodeScalars))
            default:
                if text.allSatisfy({ $0.isASCII }) { continue }
                text = [Unicode.Scalar](step.apply(String(String.UnicodeScalarView(text))).unicodeScalars)
            }
        }
        return text
    }
}
