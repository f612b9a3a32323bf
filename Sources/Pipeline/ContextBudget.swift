import Stream

/// Refuses, as early as it can be known, a video prompt that cannot fit the language model's
/// context: after the first pruned step when the clip's length is known (its tokens × the steps
/// the sampling will give), else (stdin, a stream) as soon as the steps so far overflow it. A
/// 10-minute clip at --every-frame fails after one frame, not after encoding 15,000.
public struct ContextBudget: Sendable {
    public let context: Int
    /// Encoder steps the sampling will give, when the input says how long it is.
    public let expectedSteps: Int?
    public private(set) var steps = 0
    public private(set) var tokens = 0

    public init(context: Int, expectedSteps: Int?) {
        self.context = context
        self.expectedSteps = expectedSteps
    }

    /// Steps `options` take from `input` (nil when unknown: stdin, streams, missing facts, a
    /// time range or keyframes only, whose share of the clip is not known before decoding).
    public static func expectedSteps(input: String, options: DecodeOptions, framesPerStep: Int) -> Int? {
        let sampling = options.sampling
        let whole = options.start == nil && options.end == nil && !options.keyframesOnly
        let info = InputKind.canReopen(input) ? try? VideoSourceInfo.probe(input) : nil
        var frames: Int?
        switch sampling {
        case .uniform(let count): frames = whole ? min(count, info?.frameCount ?? count) : nil
        case .everyFrame: frames = whole ? info?.frameCount : nil
        case .fps(let rate):
            // At most one frame per tick, and never more than the clip has.
            if whole, let duration = info?.duration, duration.isFinite, duration > 0 {
                frames = Int(min(1e9, (duration * rate).rounded(.down)))
                if let count = info?.frameCount { frames = min(frames ?? count, count) }
            }
        }
        return frames.map { max(1, ($0 + framesPerStep - 1) / max(1, framesPerStep)) }
    }

    /// Counts one pruned step's visual tokens; throws when the prompt cannot fit.
    public mutating func add(tokens more: Int) throws {
        steps += 1
        tokens += more
        if tokens >= context {
            throw PipelineError.invalidOption(flag: "--frames/--fps/--budget",
                cause: "the first \(steps) steps already hold \(tokens) visual tokens, more than the language model's context of \(context): sample fewer frames (--frames, --fps) or keep fewer tokens (--budget, --tokens)")
        }
        if steps == 1, let expected = expectedSteps, expected > 1, SizeLimit.times(more, expected) >= context {
            throw PipelineError.invalidOption(flag: "--frames/--fps/--budget",
                cause: "\(expected) steps of \(more) visual tokens (\(SizeLimit.times(more, expected))) do not fit the language model's context of \(context): sample fewer frames (--frames, --fps) or keep fewer tokens (--budget, --tokens)")
        }
    }
}

private enum SizeLimit {
    static func times(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : p
    }
}
