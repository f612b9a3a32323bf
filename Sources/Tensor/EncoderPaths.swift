// The switches of the encoder's hot paths, process-wide. Production runs `best`; `hiprune-bench
// encode --ab` runs `earlier` on alternate frames to measure what each change bought on the same
// frames in one process (the machine is shared, so absolute figures drift). `gemmKernel` is read
// when an encoder loads (it decides how the weights are held), so the bench builds one encoder
// under each.

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

    /// Which kernel multiplies the encoder's F32 projections.
    public enum GEMMKernel: String, Sendable {
        /// cblas_sgemm on the weights as stored (threaded as `gemmThreading` says); bias, residual and
        /// GELU partly in passes of their own.
        case openBLAS
        /// enc_gemm_panels on weights packed once at load (PackedWeights), bias, residual add and
        /// GELU in the tile's epilogue; x packed once per chunk of rows, then column slices, one per core.
        case packed
    }

    public var gemmThreading: GEMMThreading
    public var gemmKernel: GEMMKernel

    public init(gemmThreading: GEMMThreading, gemmKernel: GEMMKernel) {
        self.gemmThreading = gemmThreading
        self.gemmKernel = gemmKernel
    }

    /// The paths before this comparison's changes.
    public static let earlier = EncoderPaths(gemmThreading: .slices, gemmKernel: .openBLAS)
    /// The fastest measured (the default): the packed kernel (encoder_kernels.c gives its measurements).
    public static let best = EncoderPaths(gemmThreading: .slices, gemmKernel: .packed)
    /// The paths in use.
    nonisolated(unsafe) public static var current = best

    public var description: String { "GEMM \(gemmKernel.rawValue), threads \(gemmThreading.rawValue)" }
}
