import CKernels
import Tensor

/// How the vision encoder's weights and products are held (`--encoder-precision`).
/// - f32: F32 products (a BF16 checkpoint's values widen exactly): the parity path.
/// - bf16: weights held BF16 (rounded to nearest), products accumulated in F32; on a CPU with
///   AVX512-BF16 the activations are rounded to BF16 too and the products run as BF16 dot products
///   (twice the F32 rate there). Elsewhere the BF16 weights are widened a panel at a time for the
///   F32 GEMM: half the weight memory, no speed-up.
/// - auto: bf16 where the CPU has native BF16 dot products (and the kernel path is avx512), else f32.
public enum EncoderPrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    case auto, f32, bf16

    /// auto resolved on this CPU: f32 or bf16.
    public var resolved: EncoderPrecision {
        guard self == .auto else { return self }
        return Self.nativeBF16 ? .bf16 : .f32
    }

    /// Whether this CPU multiplies BF16 natively on the kernel path in use.
    public static var nativeBF16: Bool { bf16_gemm_native() != 0 }

    /// Holds one of the encoder's matrices as this precision says (`stored`: the checkpoint's dtype was BF16).
    public func hold(_ matrix: Matrix, storedBF16: Bool = false) -> WeightMatrix {
        resolved == .bf16 ? WeightMatrix(matrix, bf16Products: true) : WeightMatrix(matrix, bf16: storedBF16)
    }

    public var description: String { rawValue }
}
