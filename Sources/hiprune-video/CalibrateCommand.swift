import Console
import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream
import Vision

/// `hiprune-video calibrate`: the object layer of an encoder, read from its own attention on the
/// user's video (HIPRUNE.md, "Calibrating the object layer").
struct CalibrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Print each encoder layer's attention dispersion on a few frames and suggest HiPrune's object layer.")

    @Argument(help: "A video file or image.")
    var input: String

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var preprocessing: PreprocessOptions

    @Flag(help: "One JSON object instead of the table.")
    var json = false

    func run() async throws {
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder()
        let allLayers = Set(1...encoder.layerCount)
        var frames: [ObjectLayerCalibration.Frame] = []
        let analysis = FrameAnalysis(encoder: encoder, preprocessing: preprocessing.preprocess)
        let options = analysis.decodeOptions(sampling.decodeOptions(defaultSampling: .uniform(count: 8)), input: input)
        let progress = ProgressLine(total: { if case .uniform(let n) = options.sampling { return n } else { return nil } }())
        try await analysis.encode(VideoFrames(input: input, options: options),
                                                         scoreLayers: allLayers) { step in
            // Each view is a grid of its own: an AnyRes frame adds its base image and every crop.
            frames += step.encoded.views.map { ObjectLayerCalibration.Frame(grid: $0.grid, scores: $0.scores) }
            progress.update(done: frames.count)
        }
        progress.finish()
        let calibration = try ObjectLayerCalibration(frames: frames)
        if json {
            let curve = zip(calibration.layers, calibration.dispersion).map { layer, value in
                JSONLine.Value.array([.int(layer), .double(value)])
            }
            Console.line(JSONLine.object([("frames", .int(frames.count)), ("dispersion", .array(curve)),
                                   ("suggested_object_layer", .int(calibration.suggestedObjectLayer)),
                                   ("default_object_layer", .int(encoder.defaultObjectLayer)),
                                   ("deep_layer", .int(encoder.defaultDeepLayer))]))
            return
        }
        Console.line("layer  dispersion  (mean grid distance between each layer's top-10 % tokens, over \(frames.count) frames)")
        let top = calibration.dispersion.max() ?? 1
        for (layer, value) in zip(calibration.layers, calibration.dispersion) {
            let bar = String(repeating: "█", count: top > 0 ? Int((value / top * 40).rounded()) : 0)
            let mark = layer == calibration.suggestedObjectLayer ? "  ← object layer" : ""
            Console.line(String(format: "%5d  %10.4f  ", layer, value) + bar + mark)
        }
        Console.line("suggested object layer: \(calibration.suggestedObjectLayer) "
              + "(default \(encoder.defaultObjectLayer), deep layer \(encoder.defaultDeepLayer)); "
              + "use it with --object-layer \(calibration.suggestedObjectLayer)")
    }
}
