import ArgumentParser
import COpenBLAS
import Foundation
import Tensor
import Vision

/// `hiprune-bench encode`: the SmolVLM2-256M vision encoder + connector (random weights made here)
/// per frame, with and without score capture, beside PyTorch (eager, same threads) and beside
/// cblas_sgemm's own GFLOP/s on this machine.
struct EncodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Vision encoder seconds per frame (median) and GFLOP/s, with and without score capture; PyTorch peer.")

    @Option(help: "Timed frames per case (median reported).")
    var runs = 5

    @Option var hidden = 768
    @Option var layers = 12
    @Option var heads = 12
    @Option var intermediate = 3072
    @Option var image = 512
    @Option var patch = 16
    @Option var scale = 4
    @Option(help: "Connector output width (SmolVLM2-256M's text hidden size).")
    var textHidden = 576

    @Option(help: "Python for the PyTorch peer (tools/bench_torch_vision.py); skipped if it does not exist.")
    var python = "/work/venv/py/bin/python"

    @Option(help: "The peer script.")
    var peer = "tools/bench_torch_vision.py"

    @Option(help: "Threads for both sides (OpenBLAS here, torch.set_num_threads there).")
    var threads = 2

    func run() async throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        openblas_set_num_threads(Int32(threads))
        var config = SmolVLMConfiguration()
        config.visionConfig.hiddenSize = hidden
        config.visionConfig.numHiddenLayers = layers
        config.visionConfig.numAttentionHeads = heads
        config.visionConfig.intermediateSize = intermediate
        config.visionConfig.imageSize = image
        config.visionConfig.patchSize = patch
        config.scaleFactor = scale
        config.textConfig.hiddenSize = textHidden
        var preprocessing = SmolVLMPreprocessorConfiguration()
        preprocessing.maxImageSize = ["longest_edge": image]
        var random = BenchRandom(seed: 1)
        let model = try SmolVLMVisionModel(configuration: config, preprocessing: preprocessing) { (_, shape) throws(WeightsError) in
            let rows = shape.count >= 2 ? shape[0] : 1
            let cols = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : shape[0]
            let s = 1 / Float(cols).squareRoot()
            return try! Matrix(rows: rows, cols: cols, storage: (0..<(rows * cols)).map { _ in random.next() * s })
        }
        let rgb = (0..<(image * image * 3)).map { _ in UInt8.random(in: 0...255) }
        let all = Set(1...layers)
        let flops = model.flopsPerFrame

        // Plain and captured runs alternate, so that load from other processes hits both alike.
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        var plainRuns: [Double] = [], capturedRuns: [Double] = []
        _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: all)  // warm-up
        for run in 0..<runs {
            let plainFirst = run % 2 == 0
            if plainFirst { plainRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: []) }) }
            capturedRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: all) })
            if !plainFirst { plainRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: []) }) }
        }
        let plain = plainRuns.sorted()[runs / 2], captured = capturedRuns.sorted()[runs / 2]
        let gemm = try sgemmGFLOPs(m: (image / patch) * (image / patch), n: intermediate, k: hidden)
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"

        print("SmolVLM vision encoder + connector: hidden \(hidden), \(layers) layers, \(heads) heads, intermediate \(intermediate), "
              + "\(image)x\(image) patch \(patch), scale \(scale); \(String(format: "%.1f", flops / 1e9)) GFLOP/frame; "
              + "\(threads) threads, OpenBLAS core \(core), median of \(runs)")
        func row(_ name: String, _ seconds: Double) {
            print(name.padding(toLength: 34, withPad: " ", startingAt: 0)
                  + String(format: "%8.3f s/frame  %7.1f GFLOP/s", seconds, flops / seconds / 1e9))
        }
        row("swift, no score capture", plain)
        row("swift, scores of all \(layers) layers", captured)
        print(String(format: "score capture overhead            %+7.1f %%", (captured / plain - 1) * 100))
        print(String(format: "cblas_sgemm %dx%dx%d              %8.1f GFLOP/s (the ceiling for the GEMMs)",
                     (image / patch) * (image / patch), intermediate, hidden, gemm))
        if let torch = torchPeer(attentions: false) {
            row("pytorch eager, no attentions", torch)
            print(String(format: "pytorch / swift                   %8.2f ×", torch / plain))
        } else {
            print("pytorch peer skipped (\(python) or \(peer) not usable)")
        }
        if let torch = torchPeer(attentions: true) {
            row("pytorch eager, output_attentions", torch)
            print(String(format: "pytorch / swift (with scores)     %8.2f ×", torch / captured))
        }
    }

    /// GFLOP/s of one big sgemm shaped like the MLP's, median of 5.
    func sgemmGFLOPs(m: Int, n: Int, k: Int) throws -> Double {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        var samples: [Double] = []
        for i in 0..<6 {
            let start = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
            if i > 0 { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        return 2 * Double(m * n * k) / samples.sorted()[samples.count / 2] / 1e9
    }

    /// Median seconds per frame of the PyTorch peer, or nil when it cannot run.
    func torchPeer(attentions: Bool) -> Double? {
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: peer) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peer, "--hidden", "\(hidden)", "--layers", "\(layers)", "--heads", "\(heads)",
                             "--intermediate", "\(intermediate)", "--image", "\(image)", "--patch", "\(patch)",
                             "--scale", "\(scale)", "--text-hidden", "\(textHidden)", "--threads", "\(threads)",
                             "--runs", "\(runs)"] + (attentions ? ["--attentions"] : [])
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let median = json["median"] as? Double else { return nil }
        return median
    }
}

/// Deterministic values in -1...1 for bench weights.
struct BenchRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
    }
}
