// Autoregressive generation on a session: prefill the prompt, then pick a token, feed it, repeat,
// until a stop token (not emitted), the token budget, or the caller says stop. Also as an
// AsyncThrowingStream of token ids: generation runs on its own task; the stream buffers every
// token (a consumer that falls behind delays nothing and loses nothing), and ending the stream's
// iteration or cancelling its task stops the generation before its next decode step.
import Foundation
import Tensor

public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// Tokens that end the answer (end of sequence, `<end_of_utterance>`, `<|im_end|>` …).
    public var stopTokens: Set<Int>

    public init(maxNewTokens: Int = 256, sampling: SamplingParameters = SamplingParameters(), stopTokens: Set<Int> = []) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
    }
}

public struct GenerationResult: Sendable {
    public enum StopReason: Sendable, Equatable { case stopToken(Int), maxTokens, stoppedByCaller }
    public var tokens: [Int]
    public var stopReason: StopReason
    public var promptTokens: Int
    public var promptSeconds: Double
    public var decodeSeconds: Double
    /// Generated tokens per second of decoding (the first token comes from the prefill).
    public var tokensPerSecond: Double { tokens.count > 1 && decodeSeconds > 0 ? Double(tokens.count - 1) / decodeSeconds : 0 }
}

extension DecoderSession {
    /// Prefills `prompt` after the cache's content and generates. `onToken` sees each new token
    /// and returns false to stop.
    public func generate(prompt: [Int], options: GenerationOptions,
                         onToken: (Int) throws -> Bool = { _ in true }) throws -> GenerationResult {
        guard options.maxNewTokens >= 0 else { throw VLMError.invalidArgument(name: "max tokens", cause: "\(options.maxNewTokens) is negative") }
        guard cache.count + prompt.count <= cache.capacity else {
            throw VLMError.contextOverflow(tokens: cache.count + prompt.count, context: cache.capacity)
        }
        let start = DispatchTime.now()
        try prefill(tokens: prompt)
        let promptSeconds = seconds(since: start)
        var result = try continueGeneration(history: prompt, options: options, onToken: onToken)
        result.promptTokens = prompt.count
        result.promptSeconds = promptSeconds
        return result
    }

    /// Generates from the logits already computed (after `prefill(embeddings:)`, say).
    /// `history`: tokens the repetition penalty should count (the prompt's ids, if known).
    public func continueGeneration(history: [Int], options: GenerationOptions,
                                   onToken: (Int) throws -> Bool = { _ in true }) throws -> GenerationResult {
        var sampler = try Sampler(parameters: options.sampling)
        let vocabulary = decoder.shape.vocabularySize
        sampler.observe(history, vocabulary: vocabulary)
        var tokens: [Int] = []
        // What the cache can still hold bounds the answer: a --max-tokens of 10^12 reserves nothing absurd.
        tokens.reserveCapacity(min(options.maxNewTokens, cache.capacity - cache.count + 1))
        var reason = GenerationResult.StopReason.maxTokens
        var work = logits
        let start = DispatchTime.now()
        while tokens.count < options.maxNewTokens {
            work = logits
            let token = sampler.next(&work)
            if options.stopTokens.contains(token) { reason = .stopToken(token); break }
            tokens.append(token)
            sampler.observe(token)
            if try !onToken(token) { reason = .stoppedByCaller; break }
            if tokens.count == options.maxNewTokens { break }
            guard cache.count < cache.capacity else { throw VLMError.contextOverflow(tokens: cache.count + 1, context: cache.capacity) }
            try step(token: token)
        }
        return GenerationResult(tokens: tokens, stopReason: reason, promptTokens: 0, promptSeconds: 0,
                                decodeSeconds: seconds(since: start))
    }
}

func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

extension LlamaModel {
    /// The tokens of an answer as they are generated, on a task of their own.
    public func tokenStream(prompt: [Int], options: GenerationOptions, context: Int? = nil) -> AsyncThrowingStream<Int, Error> {
        let stop = StopFlag()
        return AsyncThrowingStream { continuation in
            let task = Task.detached { [self] in
                do {
                    let session = try DecoderSession(model: self, context: context)
                    _ = try session.generate(prompt: prompt, options: options) { token in
                        continuation.yield(token)
                        return !stop.isSet && !Task.isCancelled
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in
                stop.set()
                task.cancel()
            }
        }
    }
}

/// A flag set from another thread (the stream's termination handler).
final class StopFlag: @unchecked Sendable {  // the lock guards `value`
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
