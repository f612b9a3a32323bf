import Foundation

/// The server's figures in Prometheus' text format (version 0.0.4). Few series and no labels
/// beyond a status or a stage, so a small registry here instead of another dependency.
public final class ServeMetrics: @unchecked Sendable {  // the lock guards every field
    private let lock = NSLock()
    private var requests: [String: Int] = [:]  // "route|status" → count
    private var framesEncoded = 0
    private var cancelledCount = 0
    private var cacheHits = 0
    private var cacheMisses = 0
    private var tokensBefore = 0
    private var tokensAfter = 0
    private var promptTokens = 0
    private var completionTokens = 0
    private var histograms: [String: Histogram] = [:]
    private var gauges: @Sendable () async -> [(name: String, help: String, value: Int)] = { [] }

    /// Seconds; from a 1 ms prune to a minutes-long answer.
    static let buckets: [Double] = [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    struct Histogram {
        var counts = [Int](repeating: 0, count: ServeMetrics.buckets.count)
        var sum = 0.0
        var count = 0
    }

    public init() {}

    func request(route: String, status: Int) {
        lock.withLock { requests["\(route)|\(status)", default: 0] += 1 }
    }

    /// Figures read when scraped (queue depth, sessions), from their owners.
    func gauges(_ read: @escaping @Sendable () async -> [(name: String, help: String, value: Int)]) {
        lock.withLock { gauges = read }
    }

    func cancelled() { lock.withLock { cancelledCount += 1 } }

    func encoded(frames: Int) { lock.withLock { framesEncoded += frames } }

    func cache(hit: Bool) { lock.withLock { if hit { cacheHits += 1 } else { cacheMisses += 1 } } }

    func tokens(before: Int, after: Int, prompt: Int, completion: Int) {
        lock.withLock {
            tokensBefore += before
            tokensAfter += after
            promptTokens += prompt
            completionTokens += completion
        }
    }

    /// One observation of a stage's latency (decode_encode, prune, prefill, generate, request).
    func observe(stage: String, seconds: Double) {
        lock.withLock {
            var h = histograms[stage] ?? Histogram()
            for (i, bound) in Self.buckets.enumerated() where seconds <= bound { h.counts[i] += 1 }
            h.sum += seconds
            h.count += 1
            histograms[stage] = h
        }
    }

    /// Frames encoded so far (tests read it to see a cache hit).
    public var framesEncodedTotal: Int { lock.withLock { framesEncoded } }

    public func text() async -> String {
        let read = lock.withLock { gauges }
        let live = await read()
        return lock.withLock {
            var out = ""
            func counter(_ name: String, _ help: String, _ value: Int) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
            }
            out += "# HELP hiprune_requests_total HTTP requests by route and status.\n# TYPE hiprune_requests_total counter\n"
            for key in requests.keys.sorted() {
                let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
                out += "hiprune_requests_total{route=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key]!)\n"
            }
            counter("hiprune_requests_cancelled_total", "Computations stopped because their client went away.", cancelledCount)
            counter("hiprune_frames_encoded_total", "Encoder steps run (cache misses only).", framesEncoded)
            counter("hiprune_frame_cache_hits_total", "Requests whose frames came from the encoded-frame cache.", cacheHits)
            counter("hiprune_frame_cache_misses_total", "Requests whose frames were decoded and encoded.", cacheMisses)
            counter("hiprune_visual_tokens_before_total", "Visual tokens before pruning.", tokensBefore)
            counter("hiprune_visual_tokens_after_total", "Visual tokens after pruning.", tokensAfter)
            counter("hiprune_prompt_tokens_total", "Prompt tokens prefilled.", promptTokens)
            counter("hiprune_completion_tokens_total", "Tokens generated.", completionTokens)
            for gauge in live {
                out += "# HELP \(gauge.name) \(gauge.help)\n# TYPE \(gauge.name) gauge\n\(gauge.name) \(gauge.value)\n"
            }
            out += "# HELP hiprune_stage_seconds Latency of each stage of a request.\n# TYPE hiprune_stage_seconds histogram\n"
            for stage in histograms.keys.sorted() {
                let h = histograms[stage]!
                for (i, bound) in Self.buckets.enumerated() {
                    out += "hiprune_stage_seconds_bucket{stage=\"\(stage)\",le=\"\(bound)\"} \(h.counts[i])\n"
                }
                out += "hiprune_stage_seconds_bucket{stage=\"\(stage)\",le=\"+Inf\"} \(h.count)\n"
                out += "hiprune_stage_seconds_sum{stage=\"\(stage)\"} \(h.sum)\n"
                out += "hiprune_stage_seconds_count{stage=\"\(stage)\"} \(h.count)\n"
            }
            return out
        }
    }
}
