import Foundation
import Prune
import VLM

/// How `stats` (and `live`) print per-frame statistics.
public enum StatisticsFormat: String, Sendable, CaseIterable {
    case table, jsonl, csv
}

/// Totals over a clip, and what pruning saves in the language model's prefill.
public struct StatisticsSummary: Sendable, Equatable {
    public var frames = 0
    public var tokensBefore = 0
    public var tokensAfter = 0
    public var anchors = 0
    public var buffers = 0
    public var registers = 0
    public var promptTokens = 0
    public var temporalDrops = 0
    public var encodeMilliseconds = 0.0
    public var pruneMilliseconds = 0.0
    /// Frames that reused an earlier frame's encoding (`--reuse`).
    public var reusedFrames = 0

    public init() {}

    public mutating func add(_ s: FrameStatistics) {
        frames += 1
        tokensBefore += s.tokensBefore
        tokensAfter += s.tokensAfter
        anchors += s.anchors
        buffers += s.buffers
        registers += s.registers
        promptTokens += s.promptTokens
        temporalDrops += s.temporalDrops
        encodeMilliseconds += s.encodeMilliseconds
        pruneMilliseconds += s.pruneMilliseconds
        if s.reused { reusedFrames += 1 }
    }

    public var keptFraction: Double { tokensBefore == 0 ? 0 : Double(tokensAfter) / Double(tokensBefore) }
}

/// Writes statistics rows and the summary in one format. Rows go to stdout as they come, so a
/// long clip or a live stream shows progress and nothing is held back.
public struct StatisticsWriter: Sendable {
    public let format: StatisticsFormat
    /// For the FLOP estimate of the summary; nil leaves it out.
    public let languageModel: DecoderShape?
    /// Whether frames may reuse an earlier encoding (`--reuse`): only then do rows and the summary
    /// carry the reuse columns, so runs without it print what they always printed.
    public let reuse: Bool
    /// The input every JSONL line names first (`stats --inputs`: lines of many inputs, and of
    /// many shards, concatenate); nil leaves it out.
    public var input: String?

    public init(format: StatisticsFormat, languageModel: DecoderShape?, reuse: Bool = false, input: String? = nil) {
        self.format = format
        self.languageModel = languageModel
        self.reuse = reuse
        self.input = input
    }

    private var inputField: [(String, JSONLine.Value)] { input.map { [("input", .string($0))] } ?? [] }

    public var header: String? {
        switch format {
        case .table:
            return "frame     time  grid     before  after  anchor  buffer  register  prompt  dedup  encode_ms  prune_ms"
                + (reuse ? "  reused" : "")
        case .csv:
            return "frame,time,grid,tokens_before,tokens_after,anchors,buffers,registers,prompt,temporal_drops,encode_ms,prune_ms"
                + (reuse ? ",reused" : "")
        case .jsonl:
            return nil
        }
    }

    public func row(_ s: FrameStatistics) -> String {
        switch format {
        case .table:
            return String(format: "%5d %8.3f  %-7@ %6d %6d %7d %7d %9d %7d %6d %10.1f %9.3f",
                          s.index, s.time, s.gridDescription as NSString, s.tokensBefore, s.tokensAfter, s.anchors,
                          s.buffers, s.registers, s.promptTokens, s.temporalDrops, s.encodeMilliseconds,
                          s.pruneMilliseconds) + (reuse ? (s.reused ? "  yes" : "   no") : "")
        case .csv:
            return String(format: "%d,%.6f,%@,%d,%d,%d,%d,%d,%d,%d,%.3f,%.4f", s.index, s.time,
                          s.gridDescription as NSString, s.tokensBefore, s.tokensAfter, s.anchors, s.buffers,
                          s.registers, s.promptTokens, s.temporalDrops, s.encodeMilliseconds, s.pruneMilliseconds)
                + (reuse ? (s.reused ? ",1" : ",0") : "")
        case .jsonl:
            return JSONLine.object(inputField + Self.fields(of: s, reuse: reuse))
        }
    }

    /// The fields of one frame, shared by `stats --format jsonl` and the frame events of `live`.
    public static func fields(of s: FrameStatistics, reuse: Bool = false) -> [(String, JSONLine.Value)] {
        // A frame of several views (AnyRes) adds their count; one-view frames print as they always did.
        let views: [(String, JSONLine.Value)] = s.grids.count > 1 ? [("views", .int(s.grids.count))] : []
        return [("frame", .int(s.index)), ("time", .double(s.time)), ("grid", .string(s.gridDescription))] + views + [
         ("tokens_before", .int(s.tokensBefore)), ("tokens_after", .int(s.tokensAfter)),
         ("anchors", .int(s.anchors)), ("buffers", .int(s.buffers)), ("registers", .int(s.registers)),
         ("prompt", .int(s.promptTokens)), ("temporal_drops", .int(s.temporalDrops)),
         ("encode_ms", .double(s.encodeMilliseconds)), ("prune_ms", .double(s.pruneMilliseconds))]
            + (reuse ? [("reused", .bool(s.reused))] : [])
    }

    /// Prefill FLOPs of one prompt holding every frame's visual tokens (text tokens excluded),
    /// without and with pruning.
    public func prefillFLOPs(_ summary: StatisticsSummary) -> (full: Double, pruned: Double)? {
        guard let languageModel else { return nil }
        return (languageModel.prefillFLOPs(tokens: summary.tokensBefore),
                languageModel.prefillFLOPs(tokens: summary.tokensAfter))
    }

    public func summary(_ summary: StatisticsSummary) -> String {
        let flops = prefillFLOPs(summary)
        switch format {
        case .jsonl:
            var fields: [(String, JSONLine.Value)] = inputField + [
                ("summary", .bool(true)), ("frames", .int(summary.frames)),
                ("tokens_before", .int(summary.tokensBefore)), ("tokens_after", .int(summary.tokensAfter)),
                ("kept_fraction", .double(summary.keptFraction)), ("anchors", .int(summary.anchors)),
                ("buffers", .int(summary.buffers)), ("registers", .int(summary.registers)),
                ("prompt", .int(summary.promptTokens)), ("temporal_drops", .int(summary.temporalDrops)),
                ("encode_ms", .double(summary.encodeMilliseconds)), ("prune_ms", .double(summary.pruneMilliseconds)),
            ]
            if reuse { fields.append(("reused_frames", .int(summary.reusedFrames))) }
            if let flops {
                fields += [("prefill_flops_full", .double(flops.full)), ("prefill_flops_pruned", .double(flops.pruned))]
            }
            return JSONLine.object(fields)
        case .table, .csv:
            var lines = [
                "frames \(summary.frames), visual tokens \(summary.tokensBefore) → \(summary.tokensAfter) "
                    + String(format: "(kept %.1f %%)", summary.keptFraction * 100),
                "anchors \(summary.anchors), buffers \(summary.buffers), registers \(summary.registers), "
                    + "prompt \(summary.promptTokens), temporal drops \(summary.temporalDrops)",
                String(format: "encode %.1f ms (%.1f ms/frame), prune %.3f ms (%.4f ms/frame)",
                       summary.encodeMilliseconds, summary.encodeMilliseconds / Double(max(1, summary.frames)),
                       summary.pruneMilliseconds, summary.pruneMilliseconds / Double(max(1, summary.frames)))
                    + (reuse ? ", reused \(summary.reusedFrames) frames" : ""),
            ]
            if let flops {
                let saved = flops.full > 0 ? (1 - flops.pruned / flops.full) * 100 : 0
                lines.append(String(format: "language-model prefill of the visual tokens: %.3g FLOPs → %.3g FLOPs (-%.1f %%)",
                                    flops.full, flops.pruned, saved))
            }
            let prefix = format == .csv ? "# " : ""
            return lines.map { prefix + $0 }.joined(separator: "\n")
        }
    }
}

/// One JSON object per line, fields in the order given (readable, diffable), no dependencies.
public enum JSONLine {
    public enum Value: Sendable {
        case int(Int), double(Double), string(String), bool(Bool), null
        case array([Value])
        case object([(String, Value)])
    }

    public static func object(_ fields: [(String, Value)]) -> String {
        "{" + fields.map { "\(quote($0.0)):\(render($0.1))" }.joined(separator: ",") + "}"
    }

    static func render(_ value: Value) -> String {
        switch value {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? String(format: "%.6g", v) : "null"
        case .string(let v): return quote(v)
        case .bool(let v): return v ? "true" : "false"
        case .null: return "null"
        case .array(let values): return "[" + values.map(render).joined(separator: ",") + "]"
        case .object(let fields): return object(fields)
        }
    }

    public static func quote(_ text: String) -> String { jsonStringLiteral(text) }
}

extension DecoderShape {
    /// FLOPs (2 per multiply-add) of prefilling `tokens` tokens: the projections and the gated MLP
    /// for every token, causal attention (query i reads i + 1 keys), and the logits of the last token.
    public func prefillFLOPs(tokens: Int) -> Double {
        let n = Double(tokens), d = Double(hiddenSize)
        let qo = 2 * d * Double(heads * headDimension)
        let kv = 2 * d * Double(kvHeads * headDimension)
        let mlp = 3 * d * Double(intermediateSize)
        let projections = 2 * n * (qo + kv + mlp)
        let attentionPairs = n * (n + 1) / 2
        let attention = 2 * 2 * attentionPairs * Double(heads * headDimension)
        let logits = tokens > 0 ? 2 * d * Double(vocabularySize) : 0
        return Double(layers) * (projections + attention) + logits
    }
}
