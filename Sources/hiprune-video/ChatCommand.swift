import ArgumentParser
import Foundation
import VLM

/// `hiprune-video chat`: text chat with a language model in its own chat template, streamed.
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Answer a text prompt with a language model (GGUF file or model directory), streaming the answer.")

    @Option(help: "A .gguf file (llama architecture, F32/F16/BF16/Q8_0/Q4_0/Q4_1) or a model directory (LlamaForCausalLM, SmolVLM2).")
    var model: String

    @Argument(help: "The user's message.")
    var prompt: String

    @Option(help: "System message (default: the template's own, if it has one).")
    var system: String?

    @Option(help: "Most tokens to generate.")
    var maxTokens = 256

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass.")
    var topP: Float = 1

    @Option(help: "Keep only the K most likely tokens (0: all).")
    var topK = 0

    @Option(help: "Penalty for tokens already present (1: none).")
    var repetitionPenalty: Float = 1

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(help: "Context size in tokens (prompt + answer).")
    var context = 2048

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
        guard context >= 1 else { throw ValidationError("--context must be at least 1") }
    }

    func run() async throws {
        let loadStart = Date()
        let language = try LanguageModel(path: model)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        let ids = try language.chatPrompt(messages)
        let contextSize = min(context, language.model.configuration.maxPositions)
        guard ids.count < contextSize else { throw VLMError.contextOverflow(tokens: ids.count, context: contextSize) }
        let session = try LlamaSession(model: language.model, context: contextSize)
        let options = GenerationOptions(
            maxNewTokens: min(maxTokens, contextSize - ids.count),
            sampling: SamplingParameters(temperature: temperature, topP: topP, topK: topK,
                                         repetitionPenalty: repetitionPenalty, seed: seed),
            stopTokens: language.stopTokens)
        var text = StreamingDetokenizer(tokenizer: language.tokenizer)
        let out = FileHandle.standardOutput
        let result = try session.generate(prompt: ids, options: options) { token in
            let piece = text.append(token)
            if !piece.isEmpty { out.write(Data(piece.utf8)) }
            return true
        }
        out.write(Data((text.finish() + "\n").utf8))
        let summary = String(format: "load %.2f s | prompt %d tokens in %.0f ms (%.1f tokens/s) | generated %d tokens at %.1f tokens/s\n",
                             loadSeconds, result.promptTokens, result.promptSeconds * 1000,
                             Double(result.promptTokens) / max(result.promptSeconds, 1e-9),
                             result.tokens.count, result.tokensPerSecond)
        FileHandle.standardError.write(Data(summary.utf8))
    }
}
