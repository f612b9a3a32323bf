import ArgumentParser
import Console
import Pipeline
import Prune
import Stream
import Vision
import VLM

/// Which frames of the input are used; shared by every command that reads video.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sample the frame nearest each 1/F-second tick (by timestamp).")
    var fps: Double?

    @Option(name: .customLong("frames"), help: "Sample N frames evenly over the clip (as SmolVLM2 does).")
    var frameCount: Int?

    @Flag(help: "Sample every frame.")
    var everyFrame = false

    @Flag(help: "Decode key frames only; other packets are skipped undecoded.")
    var keyframes = false

    @Option(help: "Start time in seconds (on the stream's clock).")
    var start: Double?

    @Option(help: "End time in seconds (exclusive).")
    var end: Double?

    func validate() throws {
        let modes = [fps != nil, frameCount != nil, everyFrame].filter { $0 }.count
        if modes > 1 { throw ValidationError("choose one of --fps, --frames and --every-frame") }
        if let fps, !(fps > 0 && fps.isFinite) { throw ValidationError("--fps must be a positive number") }
        if let frameCount, frameCount < 1 { throw ValidationError("--frames must be at least 1") }
        // (Negative times are allowed: a stream's clock may start before 0.)
        if let start, start.isNaN { throw ValidationError("--start must be a number of seconds") }
        if let end, end.isNaN { throw ValidationError("--end must be a number of seconds") }
        if let start, let end, end <= start { throw ValidationError("--end must be after --start") }
    }

    /// Fewer frames than `--frames N` asked for (corrupt or undecodable frames were skipped): one
    /// warning line on stderr and the run succeeds, as ffmpeg skips a corrupt frame and goes on.
    func warnIfShort(input: String, sampled: Int) {
        guard let frameCount, sampled > 0, sampled < frameCount else { return }
        Console.err("\(Console.programName): warning: \(input): \(sampled) of the \(frameCount) frames asked for were decoded (the rest are corrupt or missing)")
    }

    /// Decode options for a model: frames keep their source size (the encoder's preprocessor
    /// resizes as the reference does); `defaultSampling` applies when no flag chose one.
    func decodeOptions(defaultSampling: FrameSampling) -> DecodeOptions {
        var sampling = defaultSampling
        if let fps { sampling = .fps(fps) }
        if let frameCount { sampling = .uniform(count: frameCount) }
        if everyFrame { sampling = .everyFrame }
        return DecodeOptions(sampling: sampling, keyframesOnly: keyframes, start: start, end: end)
    }
}

extension PruneMethod: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
}

extension HiPrune.Mode: ExpressibleByArgument {}

extension StatisticsFormat: ExpressibleByArgument {}

/// How tokens are chosen; shared by stats, encode, visualize, ask and live.
struct PruneOptions: ParsableArguments {
    @Option(help: "Share of each frame's tokens to keep, in (0, 1].")
    var budget: Double?

    @Option(help: "Tokens to keep per frame (instead of --budget).")
    var tokens: Int?

    @Option(help: "hiprune, hiprune++, none, random, uniform, deep or object.")
    var method: PruneMethod = .hiprune

    @Option(help: "Encoder layer (1-based) whose attention marks objects; default: the family's.")
    var objectLayer: Int?

    @Option(help: "Encoder layer (1-based) whose attention picks registers; default: the last.")
    var deepLayer: Int?

    @Option(help: "Share of the budget spent on anchors, times 5 (HiPrune's alpha).")
    var alpha = 0.1

    @Option(help: "Buffer rule: grid (true 4-neighbours) or reference (the published flat-index arithmetic).")
    var bufferMode: HiPrune.Mode = .grid

    @Option(help: "Drop tokens whose feature repeats the previous frame's at the same place (cosine ≥ T).")
    var dedup: Float?

    @Option(help: "HiPrune++: prompt tokens, round(beta · N' / 5).")
    var beta = 0.1

    @Option(help: "Seed of the random baseline and of the sampler.")
    var seed: UInt64 = 0

    func validate() throws {
        if budget != nil && tokens != nil { throw ValidationError("choose one of --budget and --tokens") }
        if let budget, !(budget > 0 && budget <= 1) { throw ValidationError("--budget \(budget) is outside (0, 1]") }
        if let tokens, tokens < 0 { throw ValidationError("--tokens must be 0 or more") }
        if let dedup, !(dedup >= -1 && dedup <= 1) { throw ValidationError("--dedup \(dedup) is not a cosine in [-1, 1]") }
        if !(alpha >= 0 && alpha.isFinite) { throw ValidationError("--alpha must be a finite value ≥ 0") }
    }

    /// `--method none` keeps everything whatever the budget says.
    var settings: PruneSettings {
        let chosen: Budget = tokens.map { .count($0) } ?? .ratio(budget ?? 0.33)
        return PruneSettings(method: method, budget: chosen, alpha: alpha, mode: bufferMode,
                             objectLayer: objectLayer, deepLayer: deepLayer, dedupThreshold: dedup,
                             beta: beta, seed: seed)
    }
}

/// How frames are encoded; shared by ask, stats and live.
struct EncoderOptions: ParsableArguments {
    @Option(help: "Reuse the last encoded frame's encoding (features, scores, selection) for a frame whose encoder input differs from it by less than T (mean absolute difference of the RGB bytes, 0–255); 0 never reuses.")
    var reuse: Double = 0

    // The default stays f32 until the native AVX512-BF16 kernel has run on a CPU that has it (it is
    // compiled and dispatched, and its arithmetic is emulated in the tests, but no machine of ours
    // with AVX512-BF16 has run it yet); then `auto` becomes the default.
    @Option(help: "Encoder weights and products: f32 (default), bf16 (weights held BF16, F32 accumulation; BF16 dot products where the CPU has AVX512-BF16), or auto (bf16 only where the CPU has AVX512-BF16).")
    var encoderPrecision: EncoderPrecision = .f32

    func validate() throws {
        if !(reuse >= 0 && reuse <= 255) { throw ValidationError("--reuse \(reuse) is outside [0, 255]") }
    }
}

extension Preprocessing: ExpressibleByArgument {}

/// How frames reach the encoder's input size; shared by every command that encodes.
struct PreprocessOptions: ParsableArguments {
    @Option(help: "reference (default): decode at the source size, then resize as the model family's processor does (transformers, e.g. SmolVLM2's two resizes, Qwen2.5-VL's smart resize); fast: one FFmpeg bicubic scale to the encoder's size while decoding (cheaper, pixels differ from the reference's).")
    var preprocess: Preprocessing = .reference
}

/// How answers are generated; shared by ask, live and chat.
struct GenerationFlags: ParsableArguments {
    @Option(help: "Most tokens per answer.")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 decodes greedily.")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling: keep the likeliest tokens up to this probability mass.")
    var topP: Float = 1

    @Option(help: "Sample among the K likeliest tokens (0: all).")
    var topK = 0

    @Option(help: "Penalty on tokens already in the prompt or answer (1: none).")
    var repetitionPenalty: Float = 1

    @Option(help: "How the language model's weights are held: stored (BF16 checkpoints stay BF16, a GGUF's quantized blocks stay quantized, others F32), f32, bf16 (half the memory and of the bytes each token reads; rounds F32 weights), or q8_0 / q4_k (quantized as they load, llama.cpp's block formats).")
    var weights = WeightPrecision.stored

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be 0 or more") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if topK < 0 { throw ValidationError("--top-k must be 0 or more") }
        if !(repetitionPenalty > 0 && repetitionPenalty.isFinite) { throw ValidationError("--repetition-penalty must be positive") }
    }

    func options(seed: UInt64, stopTokens: Set<Int>) -> GenerationOptions {
        GenerationOptions(maxNewTokens: maxTokens,
                          sampling: SamplingParameters(temperature: temperature, topP: topP, topK: topK,
                                                       repetitionPenalty: repetitionPenalty, seed: seed),
                          stopTokens: stopTokens)
    }
}

extension WeightPrecision: ExpressibleByArgument {}

extension EncoderPrecision: ExpressibleByArgument {}

/// A list of inputs split over workers that never talk to each other: worker I of N takes inputs
/// I, I+N, I+2N, … of the list (Kubernetes Indexed Jobs: `--shard $JOB_COMPLETION_INDEX/N`; Slurm
/// arrays: `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`). Shared by stats and encode.
struct ShardOptions: ParsableArguments {
    @Option(help: "A file listing inputs, one per line (blank lines and lines starting with # skipped), instead of the input argument.")
    var inputs: String?

    @Option(help: "I/N (0 ≤ I < N): take inputs I, I+N, I+2N, … of --inputs, so N workers split the list without coordination.")
    var shard: String?

    /// "I/N" → (I, N).
    static func parse(shard text: String) -> (index: Int, count: Int)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, n <= 1_000_000, i >= 0, i < n else { return nil }
        return (i, n)
    }

    func validate() throws {
        if let shard {
            guard inputs != nil else { throw ValidationError("--shard needs --inputs (a list to split)") }
            guard Self.parse(shard: shard) != nil else { throw ValidationError("--shard '\(shard)' is not I/N with 0 ≤ I < N") }
        }
    }

    /// This worker's inputs with their 0-based positions in the list, or the one argument.
    func selected(argument: String?) throws -> [(index: Int, input: String)] {
        guard let inputs else {
            guard let argument else { throw ValidationError("give an input, or --inputs FILE") }
            return [(0, argument)]
        }
        guard argument == nil else { throw ValidationError("give an input or --inputs, not both") }
        guard let text = try? String(contentsOfFile: inputs, encoding: .utf8) else {
            throw PipelineError.unreadableConfiguration(file: inputs, cause: "cannot read the list of inputs")
        }
        let list = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let (index, count) = shard.flatMap(Self.parse(shard:)) ?? (0, 1)
        return list.enumerated().filter { $0.offset % count == index }.map { ($0.offset, $0.element) }
    }
}
