import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream
import Vision
import VLM

/// `ask` on a Qwen2.5-VL directory: frames sampled at Qwen's 2 fps by default, paired into temporal
/// patches, pruned on each patch's own grid, then one prompt per question with the kept tokens at
/// their original M-RoPE positions (no shared-prefix cache across questions yet: each question
/// prefills its whole prompt).
extension AskCommand {
    func runQwen(questions: [String]) async throws {
        let clock = ContinuousClock()
        let loadStart = clock.now
        let encoder = try ModelFamily.qwen25VL.loadEncoder(directory: model)
        let answering = try Qwen2VideoAnswering(directory: model)
        var stage = try PruningStage(settings: pruning.settings, encoder: encoder)
        let generation = GenerationOptions(
            maxNewTokens: maxTokens,
            sampling: SamplingParameters(temperature: temperature, topP: topP, topK: topK,
                                         repetitionPenalty: repetitionPenalty, seed: pruning.seed),
            stopTokens: answering.stopTokens)
        try generation.sampling.validate()
        let loadSeconds = (clock.now - loadStart).seconds

        // HiPrune++ ranks tokens against the question, so each question prunes the encoded patches anew.
        let perQuestion = pruning.method == .hiprunePlusPlus
        let frameStart = clock.now
        var encodedSteps: [FrameAnalysis.Step] = []
        var pruned: [PrunedFrame] = []
        var summary = StatisticsSummary()
        let analysis = FrameAnalysis(encoder: encoder)
        let options = sampling.decodeOptions(defaultSampling: .fps(2))
        if perQuestion {
            try await analysis.encode(VideoFrames(input: input, options: options), scoreLayers: stage.scoreLayers) { step in
                encodedSteps.append(step)
            }
        } else {
            try await analysis.prune(VideoFrames(input: input, options: options), stage: &stage) { _, frame, statistics in
                pruned.append(frame)
                summary.add(statistics)
            }
        }
        let frameSeconds = (clock.now - frameStart).seconds
        guard !pruned.isEmpty || !encodedSteps.isEmpty else {
            throw PipelineError.invalidOption(flag: input, cause: "no frame was sampled")
        }
        let stdout = FileHandle.standardOutput
        var lines: [String] = []
        var results: [[String: Any]] = []
        for question in questions {
            if perQuestion {
                let embedding = try answering.promptEmbedding(question: question)
                stage.reset()
                summary = StatisticsSummary()
                pruned = try encodedSteps.map { step in
                    let (frame, statistics) = try stage.prune(step.encoded, index: step.index, time: step.time,
                                                              encodeMilliseconds: step.encodeMilliseconds,
                                                              promptEmbedding: embedding)
                    summary.add(statistics)
                    return frame
                }
            }
            let patches = pruned.map {
                Qwen2VideoAnswering.Patch(rows: $0.grid.rows, cols: $0.grid.cols, kept: $0.selection.indices,
                                          features: $0.features, time: $0.time)
            }
            let answer = try answering.answer(patches: patches, question: question, generation: generation) { piece in
                if !json { stdout.write(Data(piece.utf8)) }
            }
            if !json { stdout.write(Data("\n".utf8)) }
            lines.append(String(format: "prefill %d tokens (%d unpruned) in %.0f ms | generated %d tokens, %.1f tokens/s",
                                answer.promptTokens, answer.fullPromptTokens, answer.prefillSeconds * 1000,
                                answer.tokens.count, answer.tokensPerSecond))
            results.append(["question": question, "answer": answer.text, "token_ids": answer.tokens,
                            "prompt_tokens": answer.promptTokens, "unpruned_prompt_tokens": answer.fullPromptTokens,
                            "prefill_ms": answer.prefillSeconds * 1000, "tokens_per_second": answer.tokensPerSecond])
        }
        let grids = Set(pruned.map(\.grid.description)).sorted().joined(separator: ", ")
        if json {
            let object: [String: Any] = ["answers": results, "temporal_patches": summary.frames, "grids": grids,
                                         "visual_tokens_before": summary.tokensBefore, "visual_tokens_after": summary.tokensAfter,
                                         "load_ms": loadSeconds * 1000, "frames_ms": frameSeconds * 1000,
                                         "encode_ms": summary.encodeMilliseconds, "prune_ms": summary.pruneMilliseconds]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let head = [String(format: "load %.0f ms | temporal patches %d (grid %@): frames %.0f ms, encode %.0f ms, prune %.2f ms",
                               loadSeconds * 1000, summary.frames, grids, frameSeconds * 1000, summary.encodeMilliseconds,
                               summary.pruneMilliseconds),
                        String(format: "visual tokens %d → %d (kept %.1f %%)", summary.tokensBefore, summary.tokensAfter,
                               summary.keptFraction * 100)]
            FileHandle.standardError.write(Data(((head + lines).joined(separator: "\n") + "\n").utf8))
        }
    }
}
