import Foundation

extension LiveEvent {
    /// The event as one JSON object: a line of `live --format jsonl`, an SSE event of `serve`.
    public var jsonLine: String { jsonLine(reuse: false) }

    /// With `reuse` (`--reuse` > 0) frames say whether they reused an earlier encoding and the
    /// summary counts them; without it the events are what they always were.
    public func jsonLine(reuse: Bool) -> String {
        switch self {
        case .frame(let s):
            return JSONLine.object([("event", .string("frame"))] + StatisticsWriter.fields(of: s, reuse: reuse))
        case let .answer(start, end, frames, question, answer, latency, promptTokens):
            return JSONLine.object([("event", .string("answer")), ("window_start", .double(start)),
                                    ("window_end", .double(end)), ("frames", .int(frames)),
                                    ("question", .string(question)), ("answer", .string(answer)),
                                    ("latency_ms", .double(latency)), ("prompt_tokens", .int(promptTokens))])
        case let .drops(total, new):
            return JSONLine.object([("event", .string("drops")), ("dropped", .int(new)), ("total", .int(total))])
        case let .reconnect(attempt, delay, cause):
            return JSONLine.object([("event", .string("reconnect")), ("attempt", .int(attempt)),
                                    ("delay_s", .double(delay)), ("cause", .string(cause))])
        case let .gaveUp(attempts, cause):
            return JSONLine.object([("event", .string("gave_up")), ("attempts", .int(attempts)), ("cause", .string(cause))])
        case .summary(let s):
            return JSONLine.object([
                ("event", .string("summary")), ("frames", .int(s.statistics.frames)),
                ("tokens_before", .int(s.statistics.tokensBefore)), ("tokens_after", .int(s.statistics.tokensAfter)),
                ("kept_fraction", .double(s.statistics.keptFraction)), ("answers", .int(s.answers)),
                ("dropped", .int(s.droppedFrames)), ("reconnects", .int(s.reconnects)),
                ("max_latency_ms", .double(s.maxLatencyMilliseconds)), ("wall_s", .double(s.wallSeconds)),
                ("stopped_by_signal", .bool(s.stoppedBySignal)),
            ] + (reuse ? [("reused_frames", .int(s.statistics.reusedFrames))] : []))
        }
    }
}
