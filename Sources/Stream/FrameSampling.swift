// Frame selection, apart from FFmpeg: decides from (ordinal, time) alone which decoded
// frames become VideoFrames, so the rules are testable on timestamps from ffprobe.

extension FrameSampling {
    /// Frame indices transformers' SmolVLM video processor samples (`sample_frames` in
    /// `video_processing_smolvlm.py`): it aims for `round(targetFPS · duration)` frames, at most
    /// `maxFrames` and at least 1; when the clip is long enough (`duration - 2·skipSeconds >
    /// maxFrames · targetFPS`) it drops `skipSeconds` at each end (start `int(skip · fps)`, end
    /// `int(total - skip · fps)`); then takes `np.linspace(start, end, n, dtype=int)` (evenly
    /// spaced over the closed range, truncated toward zero) and removes duplicates.
    public static func smolVLMFrameIndices(totalFrames: Int, duration: Double, videoFPS: Double,
                                           maxFrames: Int = 64, targetFPS: Double = 1,
                                           skipSeconds: Double = 1) -> [Int] {
        guard totalFrames > 0 else { return [] }
        let estimated = Int((targetFPS * duration).rounded(.toNearestOrEven))
        let desired = max(1, min(estimated, maxFrames))
        var first = 0
        var last = totalFrames - 1
        if skipSeconds > 0 && duration - 2 * skipSeconds > Double(maxFrames) * targetFPS {
            first = Int(skipSeconds * videoFPS)
            last = Int(Double(totalFrames) - skipSeconds * videoFPS)
        }
        first = max(0, first)
        last = min(last, totalFrames - 1)
        if first >= last { (first, last) = (0, totalFrames - 1) }
        return linspaceIndices(from: first, to: last, count: desired)
    }

    /// `count` frames evenly spaced over `total` frames: SmolVLM's rule without its fps cap and
    /// end skipping, i.e. `np.unique(np.linspace(0, total - 1, count, dtype=int))`.
    public static func uniformIndices(count: Int, total: Int) -> [Int] {
        guard total > 0, count > 0 else { return [] }
        // linspace's steps are then below 1, so every index is hit: the same result without a
        // loop (or a reservation) as long as a hostile --frames 10^12.
        if count >= total { return Array(0..<total) }
        return linspaceIndices(from: 0, to: total - 1, count: count)
    }

    /// `np.unique(np.linspace(first, last, count, dtype=int))`, with numpy's arithmetic
    /// (`i · step + start`, last point exactly `last`) so truncation lands on the same integers.
    static func linspaceIndices(from first: Int, to last: Int, count: Int) -> [Int] {
        guard count > 0 else { return [] }
        guard count > 1 else { return [first] }
        let step = Double(last - first) / Double(count - 1)
        var indices: [Int] = []
        indices.reserveCapacity(count)
        for i in 0..<count {
            let value = i == count - 1 ? Double(last) : Double(i) * step + Double(first)
            let index = Int(value.rounded(.towardZero))
            if indices.last != index { indices.append(index) }
        }
        return Array(Set(indices)).sorted()
    }
}

/// Applies a `FrameSampling`, the time range and nothing else. Frames are offered in
/// presentation order; fps sampling looks one frame ahead, so a frame can be held until the
/// next one shows whether it is nearer a tick.
struct FrameSelector {
    enum Verdict: Equatable {
        /// Not a sampled frame.
        case skip
        /// Sampled now.
        case take
        /// Maybe sampled: decided when the next frame is offered.
        case hold
    }

    /// What to do with the frame held before (if any) and with the frame just offered.
    struct Decision: Equatable {
        var takeHeld: Bool
        var current: Verdict
        /// Past the end of the range: nothing more will be taken.
        var done: Bool
    }

    let sampling: FrameSampling
    let start: Double?
    let end: Double?
    /// Ordinals (among frames in range) to take, for `.uniform`.
    private let chosen: Set<Int>
    private var ordinal = 0
    private var firstTick: Double?
    private var tick = 0
    /// The frame offered last, and whether it was already taken.
    private var previousTime: Double?
    private var previousTaken = false

    /// `candidates` is the number of frames in range, needed by `.uniform` only.
    init(sampling: FrameSampling, start: Double?, end: Double?, candidates: Int? = nil) {
        self.sampling = sampling
        self.start = start
        self.end = end
        if case .uniform(let count) = sampling {
            chosen = Set(FrameSampling.uniformIndices(count: count, total: candidates ?? 0))
        } else {
            chosen = []
        }
    }

    mutating func offer(time: Double) -> Decision {
        if let start, time < start { return Decision(takeHeld: false, current: .skip, done: false) }
        if let end, time >= end { return Decision(takeHeld: false, current: .skip, done: true) }
        defer { ordinal += 1 }
        switch sampling {
        case .everyFrame:
            return Decision(takeHeld: false, current: .take, done: false)
        case .uniform:
            return Decision(takeHeld: false, current: chosen.contains(ordinal) ? .take : .skip,
                            done: ordinal >= (chosen.max() ?? -1))
        case .fps(let rate):
            guard rate > 0, rate.isFinite else { return Decision(takeHeld: false, current: .skip, done: true) }
            let origin = firstTick ?? start ?? time
            firstTick = origin
            var takeHeld = false
            var takeCurrent = false
            // Ticks are origin + k / rate (not accumulated) so long clips do not drift.
            while origin + Double(tick) / rate <= time {
                let mark = origin + Double(tick) / rate
                if let previous = previousTime, mark - previous <= time - mark {
                    // Ties go to the earlier frame; a frame already taken is not taken twice.
                    if !previousTaken { takeHeld = true }
                } else {
                    takeCurrent = true
                }
                tick += 1
            }
            previousTime = time
            previousTaken = takeCurrent
            return Decision(takeHeld: takeHeld, current: takeCurrent ? .take : .hold, done: false)
        }
    }
}
