// SIMD8 loads and stores for the Swift loops that stay in Swift (RMSNorm of a decode step). The
// exponentials of softmax, GELU and SiLU are C kernels (Sources/CKernels), chosen by the CPU's flags.

public typealias Float8 = SIMD8<Float>

@inlinable @inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Float8 { UnsafeRawPointer(p).loadUnaligned(as: Float8.self) }

@inlinable @inline(__always)
func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self) }
