import Foundation
import Pipeline
import Prune
import Stream
import Vision
import VLM

/// The model `serve` loads once: any family of the registry, through its plug-in loaders, and
/// the one question → answer flow `ask` uses (`VideoQuestionFlow`, HiPrune++ included).
public final class ServeModel: Sendable {
    public let id: String
    /// The model directory, or the text GGUF.
    public let directory: String
    public let family: ModelFamily
    public let encoder: any FrameEncoder
    public let answerer: any VideoAnswerer
    /// The language model's context, in tokens: prompts plus answers fit in it.
    public let contextTokens: Int
    /// `--preprocess`: how frames reach the encoder's input size.
    public let preprocessing: Preprocessing
    let cache: FrameCache
    let metrics: ServeMetrics

    /// Loads `files`: a model directory, or llama.cpp's text + mmproj GGUF pair (the id is then the
    /// text GGUF's file name).
    public init(files: ModelFiles, precision: WeightPrecision, cacheVideos: Int, metrics: ServeMetrics,
                preprocessing: Preprocessing = .reference) throws {
        directory = files.path
        self.preprocessing = preprocessing
        id = URL(fileURLWithPath: files.path).standardizedFileURL.lastPathComponent
        family = files.family
        encoder = try files.loadEncoder()
        answerer = try files.loadAnswerer(precision: precision)
        contextTokens = try files.languageModelShape().maxPositions
        cache = FrameCache(capacity: cacheVideos)
        self.metrics = metrics
    }

    /// What one answer produced, for the response and its `usage`.
    public struct Answer: Sendable {
        public var text: String
        public var tokens: [Int]
        public var promptTokens: Int
        public var visualTokensBefore: Int
        public var visualTokensAfter: Int
        public var frames: Int
        /// Frames decoded and encoded for this request (0 when they came from the cache).
        public var framesEncoded: Int
        public var cacheHit: Bool
        /// "stop" (a stop token or string) or "length" (max_tokens reached).
        public var finishReason: String
    }

    /// Answers `request` about `media`; `onText` streams the answer's pieces (stop strings held back).
    /// Runs synchronously heavy code: call it from a task on the compute executor.
    /// `onReady` is called once the frames are encoded and pruned, just before the prompt's prefill:
    /// errors of the media or the settings come before it.
    func answer(_ request: ChatRequest, media: MediaInput, limits: ServeLimits, throttleMilliseconds: Int = 0,
                onReady: () -> Void = {}, onText: @escaping (String) -> Void) async throws -> Answer {
        let clock = ContinuousClock()
        var flow = try VideoQuestionFlow(answerer: answerer, stage: try PruningStage(settings: request.pruning, encoder: encoder),
                                         questions: [request.question])
        var generation = GenerationOptions(maxNewTokens: request.maxTokens, sampling: request.parameters,
                                           stopTokens: answerer.stopTokens)
        generation.sampling.seed = request.parameters.seed
        do { try generation.sampling.validate() } catch { throw APIError.badField("temperature", "\(error)") }

        let analysis = FrameAnalysis(encoder: encoder, preprocessing: preprocessing)
        var decode = DecodeOptions(sampling: family.defaultSampling)
        switch request.sampling {
        case .family: break
        case .frames(let n): decode.sampling = .uniform(count: n)
        case .fps(let fps): decode.sampling = .fps(fps)
        }
        let probe = try? VideoSourceInfo.probe(media.location)
        if let duration = probe?.duration {
            guard duration <= limits.maxDurationSeconds else {
                throw APIError.badField(request.mediaField, String(format: "the clip lasts %.0f s, more than the %.0f s allowed", duration, limits.maxDurationSeconds))
            }
            if case .fps(let fps) = decode.sampling, Int((duration * fps).rounded(.up)) > limits.maxFrames {
                throw APIError.badField("hiprune.fps", String(format: "%.3g frames/s over %.1f s samples more than %d frames", fps, duration, limits.maxFrames))
            }
        }
        if case .uniform(let n) = decode.sampling, n > limits.maxFrames {
            throw APIError.badField("hiprune.frames", "the family's default of \(n) frames exceeds the server's \(limits.maxFrames)")
        }
        let options = analysis.decodeOptions(decode, input: media.location)

        // Encoded frames: from the cache, or decoded and encoded now (at most maxFrames steps).
        let key = media.cacheIdentity.map { "\($0)|\(options)|\(flow.stage.scoreLayers.sorted())|\(encoder.framesPerStep)" }
        var steps: [FrameAnalysis.Step]
        var encodedNow = 0
        let encodeStart = clock.now
        if let key, let cached = cache.get(key) {
            steps = cached
            metrics.cache(hit: true)
        } else {
            steps = []
            do {
                try await analysis.encode(VideoFrames(input: media.location, options: options), scoreLayers: flow.stage.scoreLayers) { step in
                    steps.append(step)
                    guard steps.count <= limits.maxFrames else {
                        throw APIError.badField(request.mediaField, "more than \(limits.maxFrames) frames were sampled")
                    }
                }
            } catch let error as APIError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw APIError.badField(request.mediaField, "cannot read the media: \(error)")
            }
            encodedNow = steps.count
            metrics.encoded(frames: steps.count)
            metrics.cache(hit: false)
            metrics.observe(stage: "decode_encode", seconds: (clock.now - encodeStart).seconds)
            if let key, !steps.isEmpty { cache.put(key, steps) }
        }
        try Task.checkCancellation()
        guard let lastTime = steps.last?.time else {
            throw APIError.badField(request.mediaField, "no frame was sampled from the media")
        }
        let duration = probe?.duration ?? lastTime

        let pruneStart = clock.now
        let (clip, statistics) = try flow.clip(of: steps)
        metrics.observe(stage: "prune", seconds: (clock.now - pruneStart).seconds)

        var stops = StopMatcher(stops: request.stops)
        onReady()
        let answerStart = clock.now
        let result: VideoQuestionFlow.Result
        do {
            result = try flow.answer(clip, duration: duration, generation: generation) { _, piece in
                guard !stops.done else { return }
                if throttleMilliseconds > 0 { usleep(UInt32(throttleMilliseconds) * 1000) }
                let out = stops.feed(piece)
                if !out.isEmpty { onText(out) }
                // A stop string ends the answer: cancelling this task stops the decoder between tokens.
                if stops.done { withUnsafeCurrentTask { $0?.cancel() } }
            }
        } catch let error as VLMError {
            throw APIError(status: 400, "\(error)", param: "max_tokens")
        }
        if !stops.done {
            if Task.isCancelled { throw CancellationError() }
            let tail = stops.finish()
            if !tail.isEmpty { onText(tail) }
        }
        guard let answer = result.answers.first else { throw CancellationError() }
        let seconds = (clock.now - answerStart).seconds
        metrics.observe(stage: "answer", seconds: seconds)

        var before = 0, after = 0
        for s in (result.statistics.isEmpty ? statistics : result.statistics) {
            before += s.tokensBefore
            after += s.tokensAfter
        }
        metrics.tokens(before: before, after: after, prompt: answer.promptTokens, completion: answer.tokens.count)
        let finish = stops.done ? "stop" : (answer.tokens.count >= request.maxTokens ? "length" : "stop")
        return Answer(text: stops.done ? stops.emitted : answer.text, tokens: answer.tokens, promptTokens: answer.promptTokens,
                      visualTokensBefore: before, visualTokensAfter: after, frames: steps.count, framesEncoded: encodedNow,
                      cacheHit: encodedNow == 0, finishReason: finish)
    }
}

/// OpenAI's `stop`: text up to the first stop string, streamed without ever showing a part of
/// one (a piece that could begin a stop string is held until it cannot).
struct StopMatcher {
    let stops: [String]
    private var pending = ""
    private(set) var emitted = ""
    private(set) var done = false

    init(stops: [String]) { self.stops = stops }

    /// The text now safe to show, given the next piece.
    mutating func feed(_ piece: String) -> String {
        guard !stops.isEmpty else {
            emitted += piece
            return piece
        }
        pending += piece
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            let out = String(pending[..<cut])
            done = true
            pending = ""
            emitted += out
            return out
        }
        // Hold back the longest tail that is a prefix of a stop string.
        var hold = 0
        for stop in stops {
            for n in stride(from: min(stop.count, pending.count), to: 0, by: -1) where pending.hasSuffix(stop.prefix(n)) {
                hold = max(hold, n)
                break
            }
        }
        let out = String(pending.dropLast(hold))
        pending = String(pending.suffix(hold))
        emitted += out
        return out
    }

    /// What is still held when generation ends without a stop string.
    mutating func finish() -> String {
        let out = pending
        pending = ""
        emitted += out
        return out
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
