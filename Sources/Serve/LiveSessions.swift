import Foundation
import Pipeline
import Prune
import Stream
import VLM

/// One `live` analysis started over HTTP: its events as JSON lines, kept (the last
/// `historyLimit`) for subscribers that come later, and pushed to every subscriber.
final class LiveSession: @unchecked Sendable {  // the lock guards history, subscribers and finished
    let id: String
    let live: LiveAnalysis
    private let lock = NSLock()
    private var history: [String] = []
    private var subscribers: [UInt64: AsyncStream<String>.Continuation] = [:]
    private var nextSubscriber: UInt64 = 0
    private(set) var finished = false
    static let historyLimit = 512
    /// Events a slow subscriber may fall behind by before the oldest are dropped.
    static let subscriberBuffer = 256

    init(id: String, live: LiveAnalysis) {
        self.id = id
        self.live = live
    }

    func publish(_ line: String) {
        let targets = lock.withLock { () -> [AsyncStream<String>.Continuation] in
            history.append(line)
            if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
            return Array(subscribers.values)
        }
        targets.forEach { $0.yield(line) }
    }

    func finish() {
        let targets = lock.withLock { () -> [AsyncStream<String>.Continuation] in
            finished = true
            defer { subscribers.removeAll() }
            return Array(subscribers.values)
        }
        targets.forEach { $0.finish() }
    }

    var isFinished: Bool { lock.withLock { finished } }

    /// The events so far, then each new one until the session ends.
    func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(Self.subscriberBuffer))
        lock.withLock {
            history.forEach { continuation.yield($0) }
            if finished {
                continuation.finish()
            } else {
                let id = nextSubscriber
                nextSubscriber += 1
                subscribers[id] = continuation
                continuation.onTermination = { [weak self] _ in
                    guard let self else { return }
                    _ = self.lock.withLock { self.subscribers.removeValue(forKey: id) }
                }
            }
        }
        return stream
    }
}

/// The live sessions of a server, at most `limit` at a time.
final class LiveSessions: @unchecked Sendable {  // the lock guards sessions
    private let lock = NSLock()
    private var sessions: [String: LiveSession] = [:]
    let limit: Int

    init(limit: Int) { self.limit = limit }

    var count: Int { lock.withLock { sessions.values.filter { !$0.isFinished }.count } }

    /// Registers a session unless `limit` are running (finished ones make room).
    func add(_ session: LiveSession) throws(APIError) {
        let added = lock.withLock { () -> Bool in
            for (id, s) in sessions where s.isFinished { sessions[id] = nil }
            guard sessions.count < limit else { return false }
            sessions[session.id] = session
            return true
        }
        guard added else {
            throw APIError(status: 429, "\(limit) live sessions are running (DELETE one, or raise --max-live)",
                           type: "rate_limit_error", retryAfter: 5)
        }
    }

    func get(_ id: String) -> LiveSession? { lock.withLock { sessions[id] } }

    func remove(_ id: String) -> LiveSession? { lock.withLock { sessions.removeValue(forKey: id) } }

    /// Stops every session (shutdown).
    func stopAll() {
        let all = lock.withLock { Array(sessions.values) }
        all.forEach { $0.live.stop() }
    }
}

/// A `POST /v1/live` body, checked.
struct LiveRequest: Sendable {
    var url: String
    var questions: [String]
    var every: Double
    var window: LiveWindow
    var fps: Double
    var pruning: PruneSettings
    var maxTokens: Int

    static let fields: Set<String> = ["url", "questions", "every", "window", "fps", "hiprune", "max_tokens"]
    static let hipruneFields: Set<String> = ["budget", "tokens", "method", "object_layer", "deep_layer", "alpha", "beta", "dedup"]

    static func parse(_ body: Data, defaults: RequestDefaults, contextTokens: Int) throws(APIError) -> LiveRequest {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: body) } catch {
            throw APIError(status: 400, "the body is not valid JSON", param: "body")
        }
        guard let o = object as? [String: Any] else { throw .badField("body", "must be a JSON object") }
        if let unknown = o.keys.sorted().first(where: { !fields.contains($0) }) {
            throw .badField(unknown, "unknown field (known: \(fields.sorted().joined(separator: ", ")))")
        }
        guard let url = try ChatRequest.string(o, "url") else { throw .badField("url", "is required") }
        var questions: [String] = []
        if let raw = o["questions"], !(raw is NSNull) {
            guard let list = raw as? [Any], list.allSatisfy({ $0 is String }), list.count <= 8 else {
                throw .badField("questions", "must be an array of at most 8 strings")
            }
            questions = list.compactMap { $0 as? String }
        }
        var every = 5.0
        if let text = try ChatRequest.string(o, "every") {
            guard let s = LiveSettings.seconds(parsing: text), s > 0, s <= 3600 else { throw .badField("every", "'\(text)' is not a duration (5s, 500ms)") }
            every = s
        } else if let s = try ChatRequest.double(o, "every") {
            guard s > 0, s <= 3600 else { throw .badField("every", "must be in (0, 3600] seconds") }
            every = s
        }
        var window = LiveWindow.frames(8)
        if let text = try? ChatRequest.string(o, "window") {
            guard let w = LiveWindow(parsing: text) else { throw .badField("window", "'\(text)' is not N frames or a span (10s)") }
            window = w
        } else if let n = try ChatRequest.int(o, "window") {
            guard n >= 1, n <= 256 else { throw .badField("window", "must be 1 ... 256 frames") }
            window = .frames(n)
        }
        if case .frames(let n) = window, n > 256 { throw .badField("window", "must be at most 256 frames") }
        let fps = try ChatRequest.double(o, "fps") ?? 1
        guard fps > 0, fps <= 30 else { throw .badField("fps", "\(fps) is outside (0, 30]") }
        var maxTokens = defaults.maxTokens
        if let n = try ChatRequest.int(o, "max_tokens") {
            guard n >= 1, n < contextTokens else { throw .badField("max_tokens", "\(n) is outside 1 ..< \(contextTokens)") }
            maxTokens = n
        }
        var pruning = defaults.pruning
        if let raw = o["hiprune"], !(raw is NSNull) {
            guard let h = raw as? [String: Any] else { throw .badField("hiprune", "must be an object") }
            if let unknown = h.keys.sorted().first(where: { !hipruneFields.contains($0) }) {
                throw .badField("hiprune.\(unknown)", "unknown field (known: \(hipruneFields.sorted().joined(separator: ", ")))")
            }
            // The same checks as a chat request's `hiprune`, through its parser.
            let probe: Data
            do {
                probe = try JSONSerialization.data(withJSONObject: [
                "messages": [["role": "user", "content": [["type": "text", "text": "q"], ["type": "video_url", "video_url": ["url": "x"]]]]],
                    "hiprune": h,
                ] as [String: Any])
            } catch { throw .badField("hiprune", "is not serialisable JSON") }
            pruning = try ChatRequest.parse(probe, defaults: defaults, limits: ServeLimits(), contextTokens: contextTokens).pruning
        }
        if pruning.method == .hiprunePlusPlus && questions.count != 1 {
            throw .badField("hiprune.method", "hiprune++ prunes each frame once for one question: give exactly one question")
        }
        return LiveRequest(url: url, questions: questions, every: every, window: window, fps: fps, pruning: pruning,
                           maxTokens: maxTokens)
    }
}
