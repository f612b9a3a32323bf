// The switches of the encoder's hot paths, process-wide. Production runs `best`; `hiprune-bench
// encode --ab` sets `current` to `earlier` on alternate frames to measure what each change bought
// on the same frames in one process (the machine is shared, so absolute figures drift).

public struct EncoderPaths: Sendable, Equatable, CustomStringConvertible {
    /// How a large F32 product (x · Wᵀ, many rows) uses the cores.
    public enum GEMMThreading: String, Sendable {
        /// One cblas_sgemm on OpenBLAS's own threads.
        case openBLAS
        /// W's rows split into one column slice of the output per core, each a single-threaded
        /// cblas_sgemm on its own thread: no hand-offs inside the product, and OpenBLAS's threads
        /// never spin beside the passes between products (attention, GELU, layer norm), which run
        /// on threads of their own.
        case slices
    }

    public var gemmThreading: GEMMThreading

    public init(gemmThreading: GEMMThreading) {
        self.gemmThreading = gemmThreading
    }

    /// The paths before this comparison's changes.
    public static let earlier = EncoderPaths(gemmThreading: .openBLAS)
    /// The fastest measured (the default).
    public static let best = EncoderPaths(gemmThreading: .slices)
    /// The paths in use.
    nonisolated(unsafe) public static var current = best

    public var description: String { "GEMM threads \(gemmThreading.rawValue)" }
}
