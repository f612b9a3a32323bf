import Foundation
import Pipeline
import Prune
import Stream
import VLM

/// Bounds the server applies to every request.
public struct ServeLimits: Sendable {
    /// Most bytes of a request body (413 beyond).
    public var maxBodyBytes = 32 << 20
    /// Most frames a question may sample (`hiprune.frames`, or `fps` × the clip's duration).
    public var maxFrames = 64
    /// Longest clip, in seconds, a question may be about.
    public var maxDurationSeconds = 3600.0
    /// Longest `stop` list and `stop` string.
    public var maxStops = 4
    public var maxStopLength = 64
    /// Longest question text, in characters.
    public var maxQuestionCharacters = 8192

    public init() {}
}

/// The server's defaults for what a request does not say (from `serve`'s flags, the CLI's defaults).
public struct RequestDefaults: Sendable {
    public var pruning: PruneSettings
    public var maxTokens: Int
    public var sampling: SamplingParameters

    public init(pruning: PruneSettings, maxTokens: Int, sampling: SamplingParameters) {
        self.pruning = pruning
        self.maxTokens = maxTokens
        self.sampling = sampling
    }
}

/// How a request samples frames: nil uses the family's default (as `ask` does).
public enum SamplingChoice: Sendable, Equatable {
    case family
    case frames(Int)
    case fps(Double)
}

/// One `POST /v1/chat/completions` request, checked.
public struct ChatRequest: Sendable {
    public var model: String?
    public var question: String
    /// The one `video_url` or `image_url` and its field path (`messages[0].content[1].video_url`).
    public var mediaURL: String
    public var mediaField: String
    public var pruning: PruneSettings
    public var sampling: SamplingChoice
    public var maxTokens: Int
    public var parameters: SamplingParameters
    public var stops: [String]
    public var stream: Bool
    public var includeUsage: Bool

    static let topLevelFields: Set<String> = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                                              "top_p", "seed", "stop", "stream", "stream_options", "hiprune", "n", "user"]
    static let hipruneFields: Set<String> = ["budget", "tokens", "method", "object_layer", "deep_layer", "alpha", "beta",
                                             "dedup", "frames", "fps"]

    /// Parses and checks a body; every error names the field at fault.
    public static func parse(_ body: Data, defaults: RequestDefaults, limits: ServeLimits,
                             contextTokens: Int) throws(APIError) -> ChatRequest {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: body) } catch {
            throw APIError(status: 400, "the body is not valid JSON", param: "body")
        }
        guard let fields = object as? [String: Any] else { throw .badField("body", "must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !topLevelFields.contains($0) }) {
            throw .badField(unknown, "unknown field (this server reads \(topLevelFields.sorted().joined(separator: ", ")))")
        }
        let model = try string(fields, "model")
        if let n = try int(fields, "n"), n != 1 { throw .badField("n", "only n = 1 is served") }

        // Messages: the question is the last user message's text; exactly one video or image.
        guard let messages = fields["messages"] as? [Any], !messages.isEmpty else {
            throw .badField("messages", "must be a non-empty array")
        }
        var question: String?
        var media: (url: String, field: String)?
        for (m, raw) in messages.enumerated() {
            let path = "messages[\(m)]"
            guard let message = raw as? [String: Any] else { throw .badField(path, "must be an object") }
            guard let role = message["role"] as? String, ["system", "user", "assistant", "developer"].contains(role) else {
                throw .badField("\(path).role", "must be system, developer, user or assistant")
            }
            var texts: [String] = []
            if let text = message["content"] as? String {
                texts.append(text)
            } else if let parts = message["content"] as? [Any] {
                for (p, rawPart) in parts.enumerated() {
                    let partPath = "\(path).content[\(p)]"
                    guard let part = rawPart as? [String: Any], let type = part["type"] as? String else {
                        throw .badField(partPath, "must be an object with a type")
                    }
                    switch type {
                    case "text":
                        guard let text = part["text"] as? String else { throw .badField("\(partPath).text", "must be a string") }
                        texts.append(text)
                    case "video_url", "image_url":
                        let url: String
                        if let value = part[type] as? String {
                            url = value
                        } else if let value = part[type] as? [String: Any], let inner = value["url"] as? String {
                            url = inner
                        } else {
                            throw .badField("\(partPath).\(type)", "must be {\"url\": \"...\"}")
                        }
                        guard role == "user" else { throw .badField(partPath, "media belongs in a user message") }
                        guard media == nil else {
                            throw .badField(partPath, "one video or image per request (\(media!.field) already names one)")
                        }
                        media = (url, "\(partPath).\(type)")
                    default:
                        throw .badField("\(partPath).type", "'\(type)' is not text, image_url or video_url")
                    }
                }
            } else {
                throw .badField("\(path).content", "must be a string or an array of parts")
            }
            if role == "user" { question = texts.joined(separator: "\n") }
        }
        guard let media else { throw .badField("messages", "no video_url or image_url part: this server answers questions about media") }
        guard let question, !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .badField("messages", "the last user message has no text (the question)")
        }
        guard question.count <= limits.maxQuestionCharacters else {
            throw .badField("messages", "the question is longer than \(limits.maxQuestionCharacters) characters")
        }

        // Generation.
        var maxTokens = defaults.maxTokens
        for key in ["max_tokens", "max_completion_tokens"] {
            if let value = try int(fields, key) {
                guard value >= 1, value < contextTokens else {
                    throw .badField(key, "\(value) is outside 1 ..< \(contextTokens) (the model's context)")
                }
                maxTokens = value
            }
        }
        var parameters = defaults.sampling
        if let t = try double(fields, "temperature") {
            guard t >= 0, t <= 2 else { throw .badField("temperature", "\(t) is outside [0, 2]") }
            parameters.temperature = Float(t)
        }
        if let p = try double(fields, "top_p") {
            guard p > 0, p <= 1 else { throw .badField("top_p", "\(p) is outside (0, 1]") }
            parameters.topP = Float(p)
        }
        if let seed = try int(fields, "seed") {
            guard seed >= 0 else { throw .badField("seed", "must be 0 or more") }
            parameters.seed = UInt64(seed)
        }
        var stops: [String] = []
        if let stop = fields["stop"], !(stop is NSNull) {
            if let one = stop as? String { stops = [one] } else if let many = stop as? [Any], many.allSatisfy({ $0 is String }) {
                stops = many.compactMap { $0 as? String }
            } else { throw .badField("stop", "must be a string or an array of strings") }
            guard stops.count <= limits.maxStops, stops.allSatisfy({ !$0.isEmpty && $0.count <= limits.maxStopLength }) else {
                throw .badField("stop", "at most \(limits.maxStops) non-empty strings of at most \(limits.maxStopLength) characters")
            }
        }
        let stream = try bool(fields, "stream") ?? false
        var includeUsage = false
        if let options = fields["stream_options"], !(options is NSNull) {
            guard let options = options as? [String: Any] else { throw .badField("stream_options", "must be an object") }
            includeUsage = try bool(options, "include_usage", path: "stream_options.include_usage") ?? false
        }

        // HiPrune settings, over the server's defaults.
        var pruning = defaults.pruning
        var sampling = SamplingChoice.family
        if let raw = fields["hiprune"], !(raw is NSNull) {
            guard let h = raw as? [String: Any] else { throw .badField("hiprune", "must be an object") }
            if let unknown = h.keys.sorted().first(where: { !hipruneFields.contains($0) }) {
                throw .badField("hiprune.\(unknown)", "unknown field (known: \(hipruneFields.sorted().joined(separator: ", ")))")
            }
            let budget = try double(h, "budget", path: "hiprune.budget")
            let tokens = try int(h, "tokens", path: "hiprune.tokens")
            if budget != nil && tokens != nil { throw .badField("hiprune.tokens", "give budget or tokens, not both") }
            if let budget {
                guard budget > 0, budget <= 1 else { throw .badField("hiprune.budget", "\(budget) is outside (0, 1]") }
                pruning.budget = .ratio(budget)
            }
            if let tokens {
                guard tokens >= 0, tokens <= 1 << 20 else { throw .badField("hiprune.tokens", "must be 0 or more") }
                pruning.budget = .count(tokens)
            }
            if let method = try string(h, "method", path: "hiprune.method") {
                guard let parsed = PruneMethod(rawValue: method) else {
                    throw .badField("hiprune.method", "'\(method)' is not one of \(PruneMethod.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                pruning.method = parsed
            }
            for (key, path) in [("object_layer", \PruneSettings.objectLayer), ("deep_layer", \PruneSettings.deepLayer)] {
                if let layer = try int(h, key, path: "hiprune.\(key)") {
                    guard layer >= 1, layer <= 1024 else { throw .badField("hiprune.\(key)", "\(layer) is not a layer number (1-based)") }
                    pruning[keyPath: path] = layer
                }
            }
            if let alpha = try double(h, "alpha", path: "hiprune.alpha") {
                guard alpha >= 0, alpha.isFinite, alpha <= 5 else { throw .badField("hiprune.alpha", "\(alpha) is outside [0, 5]") }
                pruning.alpha = alpha
            }
            if let beta = try double(h, "beta", path: "hiprune.beta") {
                guard beta >= 0, beta <= 5 else { throw .badField("hiprune.beta", "\(beta) is outside [0, 5]") }
                pruning.beta = beta
            }
            if let dedup = try double(h, "dedup", path: "hiprune.dedup") {
                guard dedup >= -1, dedup <= 1 else { throw .badField("hiprune.dedup", "\(dedup) is not a cosine in [-1, 1]") }
                pruning.dedupThreshold = Float(dedup)
            }
            let frames = try int(h, "frames", path: "hiprune.frames")
            let fps = try double(h, "fps", path: "hiprune.fps")
            if frames != nil && fps != nil { throw .badField("hiprune.fps", "give frames or fps, not both") }
            if let frames {
                guard frames >= 1, frames <= limits.maxFrames else {
                    throw .badField("hiprune.frames", "\(frames) is outside 1 ... \(limits.maxFrames)")
                }
                sampling = .frames(frames)
            }
            if let fps {
                guard fps > 0, fps.isFinite, fps <= 120 else { throw .badField("hiprune.fps", "\(fps) is outside (0, 120]") }
                sampling = .fps(fps)
            }
        }
        pruning.seed = parameters.seed
        return ChatRequest(model: model, question: question, mediaURL: media.url, mediaField: media.field, pruning: pruning,
                           sampling: sampling, maxTokens: maxTokens, parameters: parameters, stops: stops, stream: stream,
                           includeUsage: includeUsage)
    }

    // Typed field readers: a field of the wrong type is a 400 naming it; JSON null reads as absent.
    static func string(_ o: [String: Any], _ key: String, path: String? = nil) throws(APIError) -> String? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw .badField(path ?? key, "must be a string") }
        return s
    }

    static func number(_ o: [String: Any], _ key: String, path: String?) throws(APIError) -> NSNumber? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        // JSONSerialization reads true/false as NSNumber too: tell them apart by type.
        guard let n = v as? NSNumber, !isBoolean(n) else {
            throw .badField(path ?? key, "must be a number")
        }
        return n
    }

    /// JSONSerialization gives true/false as NSNumbers of type "c" (no JSON number reads as a char).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func int(_ o: [String: Any], _ key: String, path: String? = nil) throws(APIError) -> Int? {
        guard let n = try number(o, key, path: path) else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 9e15 else { throw .badField(path ?? key, "must be an integer") }
        return Int(d)
    }

    static func double(_ o: [String: Any], _ key: String, path: String? = nil) throws(APIError) -> Double? {
        guard let n = try number(o, key, path: path) else { return nil }
        guard n.doubleValue.isFinite else { throw .badField(path ?? key, "must be finite") }
        return n.doubleValue
    }

    static func bool(_ o: [String: Any], _ key: String, path: String? = nil) throws(APIError) -> Bool? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        guard let n = v as? NSNumber, isBoolean(n) else { throw .badField(path ?? key, "must be true or false") }
        return n.boolValue
    }
}
