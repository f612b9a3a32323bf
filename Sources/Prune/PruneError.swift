/// Everything that can be wrong with a selection request. Each case prints as one line
/// naming the offending input and the cause, because the CLI shows it verbatim.
public enum PruneError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidGrid(TokenGrid)
    case negativeBudget(Int)
    case budgetExceedsTokens(budget: Int, tokens: Int)
    case ratioOutOfRange(Double)
    case unknownMethod(String)
    case objectLayerOutOfRange(layer: Int, layerCount: Int)
    /// An array whose length does not fit the grid (or the feature width).
    case lengthMismatch(field: String, count: Int, expected: Int)
    case nonFiniteValue(field: String, index: Int)
    case invalidParameter(name: String, value: Double, expected: String)
    case noCalibrationFrames
    case missingLayer(frame: Int, layer: Int)

    public var description: String {
        switch self {
        case .invalidGrid(let grid):
            return "token grid \(grid) is empty or negative: rows and cols must both be at least 1"
        case .negativeBudget(let budget):
            return "budget \(budget) is negative: expected a token count from 0 to the frame's token count"
        case .budgetExceedsTokens(let budget, let tokens):
            return "budget of \(budget) tokens exceeds the frame's \(tokens) tokens"
        case .ratioOutOfRange(let ratio):
            return "budget ratio \(ratio) is outside (0, 1]"
        case .unknownMethod(let name):
            let known = PruneMethod.allCases.map(\.rawValue).joined(separator: ", ")
            return "unknown prune method '\(name)': expected one of \(known)"
        case .objectLayerOutOfRange(let layer, let layerCount):
            return "object layer \(layer) is out of range: the encoder has layers 1...\(layerCount)"
        case .lengthMismatch(let field, let count, let expected):
            return "\(field) has \(count) values, expected \(expected)"
        case .nonFiniteValue(let field, let index):
            return "\(field)[\(index)] is not a finite number"
        case .invalidParameter(let name, let value, let expected):
            return "\(name) = \(value) is invalid: expected \(expected)"
        case .noCalibrationFrames:
            return "object-layer calibration needs at least one frame with per-layer scores"
        case .missingLayer(let frame, let layer):
            return "calibration frame \(frame) has no scores for layer \(layer), which other frames have"
        }
    }
}

/// Checks shared by every policy, so each one reports bad input the same way.
enum Validate {
    static func grid(_ grid: TokenGrid) throws(PruneError) {
        guard grid.rows >= 1, grid.cols >= 1 else { throw .invalidGrid(grid) }
    }

    static func values(_ values: [Float], field: String, count expected: Int) throws(PruneError) {
        guard values.count == expected else {
            throw .lengthMismatch(field: field, count: values.count, expected: expected)
        }
        if !allFinite(values), let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .nonFiniteValue(field: field, index: bad)
        }
    }

    /// x · 0 is 0 for every finite x and NaN otherwise, so one vectorised sum checks a whole
    /// feature matrix (millions of values per frame) at memory speed.
    static func allFinite(_ values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { v in
            guard let base = v.baseAddress else { return true }
            var probe = SIMD8<Float>()
            var i = 0
            while i + 8 <= v.count {
                probe += UnsafeRawPointer(base + i).loadUnaligned(as: SIMD8<Float>.self) * 0
                i += 8
            }
            var tail: Float = probe.sum()
            while i < v.count {
                tail += v[i] * 0
                i += 1
            }
            return tail == 0
        }
    }

    static func mask(_ mask: [Bool]?, count expected: Int) throws(PruneError) {
        if let mask, mask.count != expected {
            throw .lengthMismatch(field: "candidate mask", count: mask.count, expected: expected)
        }
    }
}
