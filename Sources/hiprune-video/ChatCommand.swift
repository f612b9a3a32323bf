import Console
import ArgumentParser
import Foundation
import Tensor
import VLM

/// `hiprune-video chat`: text chat with a language model in its own chat template, streamed.
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Answer a text prompt with a language model (GGUF file or model directory), streaming the answer.")

    @Option(help: "A .gguf file (llama architecture; F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) or a model directory (LlamaForCausalLM, SmolVLM2).")
    var model: String

    @Argument(help: "The user's message.")
    var prompt: String

    @Option(help: "System message (default: the template's own, if it has one).")
    var system: String?

    @OptionGroup var generating: GenerationFlags

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(help: "Context size in tokens (prompt + answer).")
    var context = 2048

    func validate() throws {
        guard context >= 1 else { throw ValidationError("--context must be at least 1") }
    }

    func run() async throws {
        let loadStart = Date()
        let language = try LanguageModel(path: model, precision: generating.weights)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        let ids = try language.chatPrompt(messages)
        let contextSize = min(context, language.model.configuration.maxPositions)
        guard ids.count < contextSize else { throw VLMError.contextOverflow(tokens: ids.count, context: contextSize) }
        let session = try DecoderSession(model: language.model, context: contextSize)
        var options = generating.options(seed: seed, stopTokens: language.stopTokens)
        options.maxNewTokens = min(options.maxNewTokens, contextSize - ids.count)
        var text = StreamingDetokenizer(tokenizer: language.tokenizer)
        let result = try session.generate(prompt: ids, options: options) { token in
            let piece = text.append(token)
            if !piece.isEmpty { Console.out(piece) }
            return true
        }
        Console.line(text.finish())
        let summary = String(format: "load %.2f s | prompt %d tokens in %.0f ms (%.1f tokens/s) | generated %d tokens at %.1f tokens/s\n",
                             loadSeconds, result.promptTokens, result.promptSeconds * 1000,
                             Double(result.promptTokens) / max(result.promptSeconds, 1e-9),
                             result.tokens.count, result.tokensPerSecond)
        Console.err(summary, newline: false)
        // What the process holds against what the model needs (weights as held + the KV cache):
        // all of it, and without the executable's and shared libraries' pages (a fixed cost of
        // every run, shared with other processes).
        if let now = ProcessMemory.resident, let peak = ProcessMemory.peakResident, let code = ProcessMemory.codeResident {
            let weights = language.model.decoder.weightBytes, cache = session.cache.byteCount
            let needed = Double(weights + cache)
            Console.err(String(format: "memory: resident %.1f MB (peak %.1f MB), %.1f MB of it executable and library pages, for %.1f MB of weights + %.1f MB of KV cache: %.2fx with those pages, %.2fx without",
                               Double(now) / 1e6, Double(peak) / 1e6, Double(code) / 1e6, Double(weights) / 1e6, Double(cache) / 1e6,
                               Double(now) / needed, Double(now - code) / needed))
        }
    }
}
