// Normalizers of Hugging Face tokenizer.json: the Unicode normal forms (Qwen2 ships NFC). They run on
// the text between added tokens, before pre-tokenization; tokens marked normalized=false are cut out
// of the raw text first, so they are never changed by them.
import Foundation

/// One normalization step, as tokenizer.json names it.
public enum Normalizer: Sendable, Equatable {
    case nfc, nfd, nfkc, nfkd

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
        case "Sequence":
            guard let steps = object["normalizers"] as? [Any] else {
                throw .malformed(file: file, cause: "normalizer Sequence without 'normalizers'")
            }
            var out: [Normalizer] = []
            for step in steps { out += try parse(step, file: file) }
            return out
        default:
            throw .unsupported(file: file, feature: "normalizer '\(type)' (supported: NFC, NFD, NFKC, NFKD, Sequence)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        }
    }
}

extension Array where Element == Normalizer {
    /// The scalars after every step; ASCII is left as it is by all four forms, so it skips Foundation.
    func apply(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        if isEmpty || scalars.allSatisfy({ $0.isASCII }) { return [Unicode.Scalar](scalars) }
        var text = String(String.UnicodeScalarView(scalars))
        for step in self { text = step.apply(text) }
        return [Unicode.Scalar](text.unicodeScalars)
    }
}
