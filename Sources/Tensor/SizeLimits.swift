// The bounds every size read from a model's files (config.json, preprocessor_config.json, a GGUF
// header) is checked against before anything is allocated from it. Each reader lists its fields
// with their kind and throws its own error naming the file and the field; the bounds are here once.
//
// The bounds are far above any released model (Llama 3.1 405B: 126 layers, width 16384, MLP 53248,
// vocabulary 128256, context 131072; Qwen2.5-VL: 152064 tokens) and far below what makes a count
// into terabytes: a hostile `num_hidden_layers: 1000000000` must be refused, not allocated.

public enum SizeKind: Sendable {
    case layers, width, heads, vocabulary, context, imageSide, patch, frames, factor

    public var bounds: ClosedRange<Int> {
        switch self {
        case .layers: return 1...1024
        case .width: return 1...(1 << 18)
        case .heads: return 1...4096
        case .vocabulary: return 1...(1 << 22)
        case .context: return 1...(1 << 22)
        case .imageSide: return 1...16384
        case .patch: return 1...1024
        case .frames: return 1...100_000
        case .factor: return 1...64
        }
    }
}

public enum SizeLimits {
    /// The first field outside its bounds, as (field, cause); nil when all fit.
    public static func violation(_ fields: [(field: String, value: Int, kind: SizeKind)]) -> (field: String, cause: String)? {
        for (field, value, kind) in fields where !kind.bounds.contains(value) {
            return (field, "\(value) is outside \(kind.bounds.lowerBound)...\(kind.bounds.upperBound)")
        }
        return nil
    }

    /// The first real field (an epsilon, a RoPE base) that is not a finite number > 0, as (field,
    /// cause); nil when all are. A zero or negative epsilon makes a norm divide by zero or take the
    /// root of a negative, and every answer NaN, without a word otherwise.
    public static func nonPositive(_ fields: [(field: String, value: Double)]) -> (field: String, cause: String)? {
        for (field, value) in fields where !(value > 0 && value.isFinite) {
            return (field, "\(value) is not a finite number > 0")
        }
        return nil
    }

    /// `a · b · …` or nil on overflow: element counts of buffers built from file sizes.
    public static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            if overflow { return nil }
            result = p
        }
        return result
    }
}
