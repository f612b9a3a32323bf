import Console
import ArgumentParser
import Foundation
import Pipeline
import Stream
import Tensor
import Vision

/// `hiprune-video encode MODEL_DIR INPUT --out FILE.safetensors`: per sampled frame, the connector's
/// features and the chosen layers' scores on the token grid, in one safetensors file:
///   frame.<i>.features  F32 [tokens, dim]      frame.<i>.scores  F32 [layers, tokens] (layers ascending)
///   metadata: layers ("6,12", 1-based), frame.<i>.grid ("8x8"), frame.<i>.time (seconds)
/// With --budget or --tokens, also the selection of the chosen --method:
///   frame.<i>.kept  I32 [k] (ascending raster indices)   metadata frame.<i>.roles ("anchor,buffer,…")
/// A frame of several views (AnyRes: a base image and its crops) writes each view under
/// frame.<i>.view.<v>.{features,scores,kept} with metadata frame.<i>.views (the count),
/// frame.<i>.view.<v>.grid, .place ("base", "crop R,C WxH+X+Y") and .roles; one-view frames keep
/// the names above.
/// Each frame's tensors go to a spool file beside --out as they are made (memory holds only the
/// header), and the file is assembled at the end through a temporary file and a rename: an error
/// leaves nothing. SIGINT or SIGTERM (Ctrl-C on `encode -` reading a stream) writes a valid file
/// of the frames encoded so far, says so on stderr and exits 130 / 143.
struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode sampled frames: features after the connector and per-layer attention scores, as safetensors.")

    @Argument(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @Argument(help: "A video file, '-' for stdin, or a URL FFmpeg can read (or --inputs).")
    var input: String?

    @OptionGroup var shards: ShardOptions

    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Output file (safetensors); with --inputs, a directory receiving NNNNNN-NAME.safetensors per input (NNNNNN: its line in the list) and a JSONL line per input on stdout.")
    var out: String

    @Option(help: "Encoder layers whose scores to keep: 'all' or a list such as 6,12 (1-based).")
    var layers = "all"

    @OptionGroup var pruning: PruneOptions
    @OptionGroup var preprocessing: PreprocessOptions

    /// The selection is written when a budget was given.
    var selects: Bool { pruning.budget != nil || pruning.tokens != nil }

    /// "all" → every layer; otherwise the listed 1-based layers.
    static func parseLayers(_ text: String, layerCount: Int) throws -> [Int] {
        if text.lowercased() == "all" { return Array(1...layerCount) }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let layer = Int(part.trimmingCharacters(in: .whitespaces)), (1...layerCount).contains(layer) else {
                throw PipelineError.invalidOption(flag: "--layers", cause: "'\(part)' is not a layer in 1...\(layerCount)")
            }
            result.insert(layer)
        }
        return result.sorted()
    }

    func run() async throws {
        let selected = try shards.selected(argument: input)
        // Fail before the long encode when the result could not be written anyway.
        let folder = shards.inputs != nil ? out : URL(fileURLWithPath: out).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PipelineError.output(path: out, cause: "\(folder) is not a directory")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw PipelineError.output(path: out, cause: "the directory \(folder) is not writable")
        }
        if shards.inputs == nil, FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), isDirectory.boolValue {
            throw PipelineError.output(path: out, cause: "is a directory")
        }
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder()
        let chosen = try Self.parseLayers(layers, layerCount: encoder.layerCount)
        if pruning.method == .hiprunePlusPlus && selects {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question; use it with ask or live")
        }
        guard shards.inputs != nil else {
            _ = try await encode(input: selected[0].input, to: out, encoder: encoder, chosen: chosen)
            return
        }
        for (index, input) in selected {
            let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
            let file = (out as NSString).appendingPathComponent(String(format: "%06d-", index) + name + ".safetensors")
            let frames = try await encode(input: input, to: file, encoder: encoder, chosen: chosen)
            Console.line(JSONLine.object([("index", .int(index)), ("input", .string(input)), ("out", .string(file)),
                                          ("frames", .int(frames))]))
        }
    }

    /// Encodes one input into one safetensors file; the number of frames written.
    func encode(input: String, to out: String, encoder: any FrameEncoder, chosen: [Int]) async throws -> Int {
        var stage = selects ? try PruningStage(settings: pruning.settings, encoder: encoder) : nil
        let scoreLayers = Set(chosen).union(stage?.scoreLayers ?? [])
        let analysis = FrameAnalysis(encoder: encoder, preprocessing: preprocessing.preprocess)
        let options = analysis.decodeOptions(sampling.decodeOptions(defaultSampling: .fps(1)), input: input)
        let spoolPath = PartialOutputs.partialPath(for: out)
        let partial = try PartialOutputs.claim(spoolPath, of: out)
        defer { PartialOutputs.discard(partial) }
        let spool = try SafeTensorsSpool(destination: out, spoolPath: spoolPath)
        PartialOutputs.onInterrupt(partial) {
            // Ctrl-C: the frames so far become the file (nothing, if none was encoded).
            guard spool.groups > 0, (try? spool.finish()) != nil else { return }
            Console.err("\(Console.programName): interrupted: wrote the \(spool.groups) frames encoded so far to \(out)")
        }
        var frames = 0
        var seconds = 0.0
        let progress = ProgressLine(total: { if case .uniform(let n) = options.sampling { return n } else { return nil } }())
        func add(_ step: FrameAnalysis.Step) throws {
            let e = step.encoded, i = step.index
            let pruned = try stage.map { current in
                var current = current
                defer { stage = current }
                return try current.prune(step).0
            }
            var tensors: [SafeTensorsSpool.Tensor] = []
            var metadata = ["layers": chosen.map(String.init).joined(separator: ",")]
            let multiView = e.views.count > 1
            if multiView { metadata["frame.\(i).views"] = String(e.views.count) }
            for (v, view) in e.views.enumerated() {
                let key = multiView ? "frame.\(i).view.\(v)" : "frame.\(i)"
                tensors.append(.init(name: "\(key).features", floats: view.features.storage,
                                     shape: [view.features.rows, view.features.cols]))
                var scores: [Float] = []
                scores.reserveCapacity(chosen.count * view.grid.count)
                for layer in chosen {
                    guard let s = view.scores[layer] else {
                        throw PipelineError.invalidOption(flag: "--layers", cause: "the encoder returned no scores for layer \(layer)")
                    }
                    scores += s
                }
                tensors.append(.init(name: "\(key).scores", floats: scores, shape: [chosen.count, view.grid.count]))
                if let selection = pruned?.views[v].selection {
                    tensors.append(.init(name: "\(key).kept", int32s: selection.indices.map { Int32($0) }, shape: [selection.count]))
                    metadata["\(key).roles"] = selection.roles.map(\.rawValue).joined(separator: ",")
                }
                metadata["\(key).grid"] = view.grid.description
                if multiView { metadata["\(key).place"] = view.place.description }
            }
            metadata["frame.\(i).time"] = String(step.time)
            frames += 1
            metadata["frames"] = String(frames)
            try spool.append(tensors, metadata: metadata)
            seconds += step.encodeMilliseconds / 1000
            progress.update(done: frames)
        }
        if InputKind.isLive(input) {
            try await analysis.encode(LiveFrames(input: input, options: options), scoreLayers: scoreLayers) { try add($0) }
        } else {
            try await analysis.encode(VideoFrames(input: input, options: options), scoreLayers: scoreLayers) { try add($0) }
        }
        progress.finish()
        guard frames > 0 else { throw PipelineError.invalidOption(flag: input, cause: "no frame was sampled") }
        try spool.finish()
        sampling.warnIfShort(input: input, sampled: frames)
        let perFrame = String(format: "%.3f", seconds / Double(frames)), total = String(format: "%.2f", seconds)
        Console.err("encoded \(frames) frames in \(total) s (\(perFrame) s/frame) → \(out)")
        return frames
    }
}
