import Foundation
import Hummingbird
import Logging
import Pipeline
import Prune
import ServiceLifecycle
import Stream
import VLM

/// Everything `serve` is told on its command line.
public struct ServeConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var apiKey: String?
    public var media: MediaPolicy
    public var maxQueue = 8
    public var parallel = 1
    public var maxLive = 2
    public var cacheVideos = 8
    /// Seconds in-flight requests get to finish after SIGTERM.
    public var graceSeconds = 30.0
    public var limits = ServeLimits()
    /// Extra time spent on every generated piece: slows answers on purpose (tests of the queue,
    /// disconnects and draining).
    public var throttleMilliseconds = 0
    public var defaults: RequestDefaults

    public init(media: MediaPolicy, defaults: RequestDefaults) {
        self.media = media
        self.defaults = defaults
    }
}

/// `hiprune-video serve`: the OpenAI-compatible HTTP API over one loaded model.
public final class Server: Sendable {
    public let configuration: ServeConfiguration
    public let model: ServeModel
    public let metrics: ServeMetrics
    let gate: ComputeGate
    let executor: ComputeExecutor
    let sessions: LiveSessions
    let temporary: TemporaryDirectory
    let created = Int(Date().timeIntervalSince1970)

    public init(configuration: ServeConfiguration, model: ServeModel, metrics: ServeMetrics) throws {
        self.configuration = configuration
        self.model = model
        self.metrics = metrics
        gate = ComputeGate(slots: configuration.parallel, maxQueue: configuration.maxQueue)
        executor = ComputeExecutor(threads: configuration.parallel + configuration.maxLive)
        sessions = LiveSessions(limit: configuration.maxLive)
        temporary = try TemporaryDirectory()
        let gate = self.gate, sessions = self.sessions, cache = model.cache
        metrics.gauges {
            [("hiprune_queue_depth", "Requests waiting for a compute slot.", await gate.waiting),
             ("hiprune_inflight", "Requests holding a compute slot.", await gate.running),
             ("hiprune_live_sessions", "Live sessions running.", sessions.count),
             ("hiprune_frame_cache_videos", "Videos in the encoded-frame cache.", cache.count)]
        }
    }

    /// Serves until SIGTERM or SIGINT, then drains: the listener closes, requests in flight get
    /// `graceSeconds` to finish, live sessions stop. `onListening` gets the bound port (port 0
    /// binds a free one).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router()
        routes(router)
        var logger = Logger(label: "hiprune-video.serve")
        logger.logLevel = .warning
        let app = Application(router: router,
                              configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                              logger: logger)
        var group = ServiceGroupConfiguration(services: [.init(service: app),
                                                         .init(service: LiveShutdown(sessions: sessions))],
                                              gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .milliseconds(Int(configuration.graceSeconds * 1000))
        try await ServiceGroup(configuration: group).run()
    }

    // MARK: Routes

    func routes(_ router: Router<BasicRequestContext>) {
        router.get("health") { _, _ in
            self.respond(route: "health") { Self.json(200, JSONLine.object([("status", .string("ok")), ("model", .string(self.model.id))])) }
        }
        router.get("metrics") { _, _ in
            let text = await self.metrics.text()
            return self.respond(route: "metrics") {
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
            }
        }
        router.get("v1/models") { request, _ in
            self.respond(route: "models") {
                try self.authorize(request)
                return Self.json(200, JSONLine.object([("object", .string("list")), ("data", .array([.object([
                    ("id", .string(self.model.id)), ("object", .string("model")), ("created", .int(self.created)),
                    ("owned_by", .string("hiprune-video")), ("family", .string(self.model.family.name)),
                    ("context_length", .int(self.model.contextTokens)),
                ])]))]))
            }
        }
        router.post("v1/chat/completions") { request, _ in
            await self.respondAsync(route: "chat") { try await self.chat(request) }
        }
        router.post("v1/live") { request, _ in
            await self.respondAsync(route: "live") { try await self.startLive(request) }
        }
        router.get("v1/live/:id/events") { request, context in
            self.respond(route: "live_events") {
                try self.authorize(request)
                guard let id = context.parameters.get("id"), let session = self.sessions.get(id) else {
                    throw APIError(status: 404, "no live session with this id", param: "id", type: "not_found_error")
                }
                let events = session.subscribe()
                return Response(status: .ok, headers: Self.sseHeaders, body: ResponseBody { writer in
                    for await line in events { try await writer.write(ByteBuffer(string: "data: \(line)\n\n")) }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                })
            }
        }
        router.delete("v1/live/:id") { request, context in
            await self.respondAsync(route: "live_delete") {
                try self.authorize(request)
                guard let id = context.parameters.get("id"), let session = self.sessions.remove(id) else {
                    throw APIError(status: 404, "no live session with this id", param: "id", type: "not_found_error")
                }
                session.live.stop()
                return Self.json(200, JSONLine.object([("id", .string(id)), ("object", .string("live.session")),
                                                       ("deleted", .bool(true))]))
            }
        }
    }

    static let sseHeaders: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    static func json(_ status: Int, _ body: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: HTTPResponse.Status(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func errorResponse(_ error: any Error) -> Response {
        let api: APIError
        switch error {
        case let e as APIError: api = e
        case is ComputeGate.Full: api = APIError(status: 429, "the queue is full; retry later", type: "rate_limit_error", retryAfter: 1)
        case is CancellationError: api = APIError(status: 499, "the request was cancelled", type: "cancelled")
        default: api = APIError(status: 500, "\(error)", type: "server_error")
        }
        var headers: HTTPFields = [:]
        if let seconds = api.retryAfter { headers[.retryAfter] = String(seconds) }
        return json(api.status, api.json, headers: headers)
    }

    func respond(route: String, _ body: () throws -> Response) -> Response {
        let response: Response
        do { response = try body() } catch { response = Self.errorResponse(error) }
        metrics.request(route: route, status: response.status.code)
        return response
    }

    func respondAsync(route: String, _ body: () async throws -> Response) async -> Response {
        let response: Response
        do { response = try await body() } catch { response = Self.errorResponse(error) }
        metrics.request(route: route, status: response.status.code)
        return response
    }

    /// `Authorization: Bearer KEY`, compared in time independent of where it differs.
    func authorize(_ request: Request) throws(APIError) {
        guard let key = configuration.apiKey else { return }
        let given = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 } ?? ""
        guard Self.constantTimeEqual(Array(given.utf8), Array(key.utf8)) else {
            throw APIError(status: 401, "a valid API key is required (Authorization: Bearer KEY)", type: "authentication_error")
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    /// The body, refused (413) beyond `maxBodyBytes` before more is read.
    func collect(_ body: RequestBody, declared: String?) async throws -> Data {
        let limit = configuration.limits.maxBodyBytes
        let tooLarge = APIError(status: 413, "the request body exceeds \(limit) bytes", param: "body")
        if let declared, let length = Int(declared), length > limit { throw tooLarge }
        var bytes: [UInt8] = []
        for try await buffer in body {
            guard bytes.count + buffer.readableBytes <= limit else { throw tooLarge }
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return Data(bytes)
    }

    // MARK: Chat completions

    enum Piece: Sendable {
        /// The frames are ready and generation begins (always the first piece unless `failed`).
        case ready
        case text(String)
        case done(ServeModel.Answer)
        case failed(any Error)
    }

    func chat(_ request: Request) async throws -> Response {
        try authorize(request)
        let cancellation = Cancellation()
        // The inbound side closing (the client went away) cancels the wait for a slot and the
        // computation; a streamed answer also stops when a write fails.
        return try await request.body.consumeWithInboundCloseHandler { body in
            let data = try await self.collect(body, declared: request.headers[.contentLength])
            let chat = try ChatRequest.parse(data, defaults: self.configuration.defaults, limits: self.configuration.limits,
                                             contextTokens: self.model.contextTokens)
            if let name = chat.model, name != self.model.id {
                throw APIError(status: 404, "model '\(name)' is not served here (GET /v1/models lists '\(self.model.id)')",
                               param: "model", type: "not_found_error")
            }
            let media = try self.configuration.media.resolve(chat.mediaURL, field: chat.mediaField, temporaryDirectory: self.temporary)
            let gate = self.gate
            let waiting = Task { try await gate.enter() }
            cancellation.attach { waiting.cancel() }
            do { try await waiting.value } catch {
                media.discard()
                throw error
            }
            // A slot is held: the computation owns it (and the media) from here and gives both back when it ends.
            let (pieces, sink) = AsyncStream<Piece>.makeStream()
            let model = self.model, limits = self.configuration.limits, metrics = self.metrics
            let throttle = self.configuration.throttleMilliseconds
            let work = Task(executorPreference: self.executor) {
                let start = ContinuousClock.now
                do {
                    let answer = try await model.answer(chat, media: media, limits: limits, throttleMilliseconds: throttle,
                                                        onReady: { sink.yield(.ready) }) { sink.yield(.text($0)) }
                    sink.yield(.done(answer))
                } catch {
                    if error is CancellationError { metrics.cancelled() }
                    sink.yield(.failed(error))
                }
                metrics.observe(stage: "request", seconds: (ContinuousClock.now - start).seconds)
                media.discard()
                sink.finish()
                await gate.leave()
            }
            cancellation.attach { work.cancel() }
            let id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
            if chat.stream {
                // The head waits for the frames: a bad video is still a 400, not an event after a 200.
                let (ready, pieces) = await Self.firstPiece(of: pieces)
                if case .failed(let error) = ready { throw error }
                // Hummingbird stops watching the inbound side once this closure returns, and that
                // reads as a close: from here a failed write is what tells that the client went away.
                cancellation.disarm()
                return self.stream(pieces, id: String(id), chat: chat, work: work)
            }
            for await piece in pieces {
                switch piece {
                case .ready, .text: continue
                case .failed(let error): throw error
                case .done(let answer): return Self.json(200, self.completion(answer, id: String(id)))
                }
            }
            throw CancellationError()
        } onInboundClosed: {
            cancellation.cancel()
        }
    }

    /// The first piece, and a stream of the rest.
    static func firstPiece(of pieces: AsyncStream<Piece>) async -> (Piece?, AsyncStream<Piece>) {
        let (rest, sink) = AsyncStream<Piece>.makeStream()
        let (first, firstSink) = AsyncStream<Piece>.makeStream()
        Task {
            var seen = false
            for await piece in pieces {
                if seen { sink.yield(piece) } else { firstSink.yield(piece); firstSink.finish(); seen = true }
            }
            firstSink.finish()
            sink.finish()
        }
        var iterator = first.makeAsyncIterator()
        return (await iterator.next(), rest)
    }

    func usage(_ a: ServeModel.Answer) -> JSONLine.Value {
        .object([("prompt_tokens", .int(a.promptTokens)), ("completion_tokens", .int(a.tokens.count)),
                 ("total_tokens", .int(a.promptTokens + a.tokens.count)),
                 ("visual_tokens_before", .int(a.visualTokensBefore)), ("visual_tokens_after", .int(a.visualTokensAfter))])
    }

    /// What the answer saw beyond OpenAI's fields: frames, the cache, the generated token ids.
    func details(_ a: ServeModel.Answer) -> JSONLine.Value {
        .object([("frames", .int(a.frames)), ("frames_encoded", .int(a.framesEncoded)), ("cache_hit", .bool(a.cacheHit)),
                 ("token_ids", .array(a.tokens.map { .int($0) }))])
    }

    func completion(_ a: ServeModel.Answer, id: String) -> String {
        JSONLine.object([
            ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(Int(Date().timeIntervalSince1970))),
            ("model", .string(model.id)),
            ("choices", .array([.object([("index", .int(0)),
                                         ("message", .object([("role", .string("assistant")), ("content", .string(a.text))])),
                                         ("finish_reason", .string(a.finishReason))])])),
            ("usage", usage(a)), ("hiprune", details(a)),
        ])
    }

    func chunk(id: String, delta: JSONLine.Value, finish: String?, extra: [(String, JSONLine.Value)] = []) -> ByteBuffer {
        let object = JSONLine.object([
            ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(Int(Date().timeIntervalSince1970))),
            ("model", .string(model.id)),
            ("choices", .array([.object([("index", .int(0)), ("delta", delta), ("finish_reason", finish.map { .string($0) } ?? .null)])])),
        ] + extra)
        return ByteBuffer(string: "data: \(object)\n\n")
    }

    /// Server-sent events as OpenAI streams them: a role chunk, content chunks, a finishing chunk
    /// (with `usage` when `stream_options.include_usage`), then `data: [DONE]`. An error after the
    /// head is one `data: {"error": …}` event.
    func stream(_ pieces: AsyncStream<Piece>, id: String, chat: ChatRequest, work: Task<Void, Never>) -> Response {
        Response(status: .ok, headers: Self.sseHeaders, body: ResponseBody { writer in
            do {
                try await writer.write(self.chunk(id: id, delta: .object([("role", .string("assistant")), ("content", .string(""))]), finish: nil))
                for await piece in pieces {
                    switch piece {
                    case .ready:
                        continue
                    case .text(let text):
                        try await writer.write(self.chunk(id: id, delta: .object([("content", .string(text))]), finish: nil))
                    case .failed(let error):
                        let api = (error as? APIError) ?? APIError(status: 500, "\(error)", type: "server_error")
                        try await writer.write(ByteBuffer(string: "data: \(api.json)\n\n"))
                    case .done(let answer):
                        var extra: [(String, JSONLine.Value)] = [("hiprune", self.details(answer))]
                        if chat.includeUsage { extra.append(("usage", self.usage(answer))) }
                        try await writer.write(self.chunk(id: id, delta: .object([]), finish: answer.finishReason, extra: extra))
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                // The client went away mid-answer: stop generating and free the slot.
                work.cancel()
                throw error
            }
        })
    }

    // MARK: Live sessions

    func startLive(_ request: Request) async throws -> Response {
        try authorize(request)
        let data = try await collect(request.body, declared: request.headers[.contentLength])
        let live = try LiveRequest.parse(data, defaults: configuration.defaults, contextTokens: model.contextTokens)
        guard let scheme = MediaPolicy.scheme(of: live.url), configuration.media.liveSchemes.contains(scheme) else {
            throw APIError.forbidden("url", "live sessions read \(configuration.media.liveSchemes.sorted().joined(separator: ", ")) URLs")
        }
        let stage = try PruningStage(settings: live.pruning, encoder: model.encoder)
        var generation = GenerationOptions(maxNewTokens: live.maxTokens, sampling: configuration.defaults.sampling,
                                           stopTokens: model.answerer.stopTokens)
        generation.sampling.seed = live.pruning.seed
        let settings = LiveSettings(questions: live.questions, every: live.every, window: live.window, capacity: 2,
                                    generation: generation)
        let analysis = FrameAnalysis(encoder: model.encoder, preprocessing: model.preprocessing)
        let liveAnalysis = LiveAnalysis(input: live.url,
                                        options: analysis.decodeOptions(DecodeOptions(sampling: .fps(live.fps)), input: live.url),
                                        settings: settings, analysis: analysis,
                                        answering: live.questions.isEmpty ? nil : model.answerer)
        let id = "live-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        let session = LiveSession(id: String(id), live: liveAnalysis)
        try sessions.add(session)
        Task(executorPreference: executor) {
            do {
                _ = try await liveAnalysis.run(stage: stage) { session.publish($0.jsonLine) }
            } catch {
                session.publish(JSONLine.object([("event", .string("error")), ("cause", .string("\(error)"))]))
            }
            session.finish()
        }
        return Self.json(200, JSONLine.object([("id", .string(String(id))), ("object", .string("live.session")),
                                               ("events", .string("/v1/live/\(id)/events"))]))
    }
}

/// Stops the live sessions when shutdown begins, so their event streams end and the server drains.
struct LiveShutdown: Service {
    let sessions: LiveSessions

    func run() async throws {
        try? await gracefulShutdown()
        sessions.stopAll()
    }
}
