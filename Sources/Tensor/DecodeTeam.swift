// The decode kernels' thread team, seen from Swift (tests and benchmarks pin it; models never need
// to). The instruction set is InstructionSet's. The kernels themselves live in CKernels/decode_kernels.c.
import CKernels

public enum DecodeTeam {
    /// Threads that take part in a single-row product: the caller plus the persistent workers
    /// (one per online core, or HIPRUNE_THREADS).
    public static var size: Int { Int(decode_team_size()) }

    /// Runs `body` with the team on or off (off: every kernel on the calling thread), then restores
    /// the previous state. Not for concurrent use: the setting is process-wide.
    public static func with<R, E: Error>(team: Bool, _ body: () throws(E) -> R) throws(E) -> R {
        let previous = decode_team_enable(team ? 1 : 0)
        defer { decode_team_enable(previous) }
        return try body()
    }

    /// The quantized-weight kernels' instruction set: "avx512vnni", "avx2" or "portable".
    public static var quantInstructionSet: String { String(cString: quant_kernel_isa()) }

    /// The quantized-weight instruction sets this CPU can run, best last: "portable", then "avx2"
    /// and "avx512vnni" where it has them.
    public static var quantInstructionSets: [String] { Array(["portable", "avx2", "avx512vnni"].prefix(Int(quant_best_isa()) + 1)) }

    /// Runs `body` with the quantized-weight kernels of `isa` (one of `quantInstructionSets`; a set the
    /// CPU lacks falls back to the best it has), then restores the previous choice. Process-wide.
    public static func with<R, E: Error>(quantISA isa: String, _ body: () throws(E) -> R) throws(E) -> R {
        let level: Int32 = isa == "avx512vnni" ? 2 : isa == "avx2" ? 1 : 0
        let previous = quant_use_isa(level)
        defer { quant_use_isa(previous) }
        return try body()
    }

    /// Units (rows, attention blocks) of the last parallel task that workers, not the caller, computed.
    public static var lastWorkerChunks: Int { decode_team_worker_chunks() }

    /// Σ of `count` floats read by the whole team: a streaming-read probe of memory bandwidth.
    public static func streamSum(_ values: UnsafePointer<Float>, count: Int) -> Double {
        decode_stream_sum(values, count)
    }

    /// Bytes per second of the fastest of `passes` streaming sums over `megabytes` MB held in weight
    /// memory (as WeightMatrix holds it), read by the team: the ceiling of a decode step. Nil when the
    /// memory cannot be had.
    public static func streamingBandwidth(megabytes: Int, passes: Int = 3) -> Double? {
        let count = max(1, megabytes) << 18
        guard let raw = decode_weights_allocate(count * 4) else { return nil }
        defer { decode_weights_release(raw) }
        let values = raw.bindMemory(to: Float.self, capacity: count)
        values.initialize(repeating: 1, count: count)
        var best = 0.0
        for _ in 0..<max(1, passes) {
            let start = ContinuousClock.now
            let sum = decode_stream_sum(values, count)
            let elapsed = start.duration(to: .now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            if sum == Double(count), seconds > 0 { best = max(best, Double(count * 4) / seconds) }
        }
        return best > 0 ? best : nil
    }
}
