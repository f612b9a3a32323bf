// Dense kernels: GEMM-backed linear layers, norms, activations, softmax, elementwise helpers.
import COpenBLAS
import Dispatch
import Foundation

/// `a · b` (or `a · bᵀ` with `transposeB`), one cblas_sgemm.
public func matmul(_ a: Matrix, _ b: Matrix, transposeB: Bool = false) throws(TensorError) -> Matrix {
    let inner = transposeB ? b.cols : b.rows
    let n = transposeB ? b.rows : b.cols
    guard a.cols == inner else {
        throw .shapeMismatch(operation: "matmul", detail: "\(a.rows)x\(a.cols) · \(b.rows)x\(b.cols)\(transposeB ? "ᵀ" : "")")
    }
    var out = Matrix(rows: a.rows, cols: n)
    guard a.rows > 0, n > 0, inner > 0 else { return out }
    a.storage.withUnsafeBufferPointer { pa in
        b.storage.withUnsafeBufferPointer { pb in
            out.storage.withUnsafeMutableBufferPointer { pc in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                            Int32(a.rows), Int32(n), Int32(inner), 1, pa.baseAddress, Int32(a.cols),
                            pb.baseAddress, Int32(b.cols), 0, pc.baseAddress, Int32(n))
            }
        }
    }
    return out
}

/// `x · Wᵀ + b` with `weight` as PyTorch stores it, [out, in]. One row goes through sgemv.
public func linear(_ x: Matrix, weight: Matrix, bias: [Float]? = nil) throws(TensorError) -> Matrix {
    guard x.cols == weight.cols else {
        throw .shapeMismatch(operation: "linear", detail: "input \(x.rows)x\(x.cols), weight \(weight.rows)x\(weight.cols)")
    }
    if let bias, bias.count != weight.rows {
        throw .shapeMismatch(operation: "linear", detail: "bias of \(bias.count) for \(weight.rows) outputs")
    }
    let m = x.rows, n = weight.rows, k = x.cols
    var out = Matrix(rows: m, cols: n)
    guard m > 0, n > 0 else { return out }
    x.storage.withUnsafeBufferPointer { px in
        weight.storage.withUnsafeBufferPointer { pw in
            out.storage.withUnsafeMutableBufferPointer { py in
                guard let y = py.baseAddress else { return }
                if let bias {
                    // Start from the bias (beta = 1) so it costs no extra pass.
                    bias.withUnsafeBufferPointer { pb in
                        for r in 0..<m { (y + r * n).update(from: pb.baseAddress!, count: n) }
                    }
                }
                let beta: Float = bias == nil ? 0 : 1
                guard k > 0 else { return }
                if m == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, pw.baseAddress, Int32(k),
                                px.baseAddress, 1, beta, y, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                                px.baseAddress, Int32(k), pw.baseAddress, Int32(k), beta, y, Int32(n))
                }
            }
        }
    }
    return out
}

/// LayerNorm over each row (biased variance, as torch.nn.LayerNorm).
public func layerNorm(_ x: Matrix, weight: [Float], bias: [Float], eps: Float) throws(TensorError) -> Matrix {
    var out = Matrix(rows: x.rows, cols: x.cols)
    try layerNorm(x, weight: weight, bias: bias, eps: eps, into: &out)
    return out
}

/// LayerNorm of `x` written into `out`, whose storage is reused when it already has x's shape
/// (a layer loop then allocates nothing).
public func layerNorm(_ x: Matrix, weight: [Float], bias: [Float], eps: Float, into out: inout Matrix) throws(TensorError) {
    guard weight.count == x.cols, bias.count == x.cols else {
        throw .shapeMismatch(operation: "layerNorm", detail: "weight \(weight.count), bias \(bias.count) for width \(x.cols)")
    }
    if out.rows != x.rows || out.cols != x.cols { out = Matrix(rows: x.rows, cols: x.cols) }
    let n = x.cols
    guard n > 0 else { return }
    x.storage.withUnsafeBufferPointer { px in
        out.storage.withUnsafeMutableBufferPointer { po in
            weight.withUnsafeBufferPointer { pw in
                bias.withUnsafeBufferPointer { pb in
                    let w = pw.baseAddress!, b = pb.baseAddress!
                    for r in 0..<x.rows {
                        let src = px.baseAddress! + r * n, row = po.baseAddress! + r * n
                        let mean = sum(src, n) / Float(n)
                        let m8 = Float8(repeating: mean)
                        var acc = Float8(repeating: 0)
                        var i = 0
                        while i + 8 <= n {
                            let d = load8(src + i) - m8
                            acc += d * d
                            i += 8
                        }
                        var variance = acc.sum()
                        while i < n {
                            let d = src[i] - mean
                            variance += d * d
                            i += 1
                        }
                        variance /= Float(n)
                        let inv = 1 / (variance + eps).squareRoot()
                        let inv8 = Float8(repeating: inv)
                        i = 0
                        while i + 8 <= n {
                            store8((load8(src + i) - m8) * inv8 * load8(w + i) + load8(b + i), row + i)
                            i += 8
                        }
                        while i < n {
                            row[i] = (src[i] - mean) * inv * w[i] + b[i]
                            i += 1
                        }
                    }
                }
            }
        }
    }
}

/// RMSNorm over each row, as Llama: `x / sqrt(mean(x²) + eps) · weight` (the pointer kernel in
/// DecoderKernels.swift, on a matrix).
public func rmsNorm(_ x: Matrix, weight: [Float], eps: Float) throws(TensorError) -> Matrix {
    guard weight.count == x.cols else {
        throw .shapeMismatch(operation: "rmsNorm", detail: "weight \(weight.count) for width \(x.cols)")
    }
    var out = Matrix(rows: x.rows, cols: x.cols)
    guard x.rows > 0, x.cols > 0 else { return out }
    x.storage.withUnsafeBufferPointer { source in
        out.storage.withUnsafeMutableBufferPointer { target in
            rmsNorm(source.baseAddress!, rows: x.rows, width: x.cols, weight: weight, eps: eps, into: target.baseAddress!)
        }
    }
    return out
}

// MARK: - Activations (in place)

/// GELU, tanh approximation ("gelu_pytorch_tanh"): 0.5·x·(1 + tanh(u)) = x · sigmoid(2u),
/// u = √(2/π)·(x + 0.044715·x³); one exponential per element.
public func geluTanh(_ x: inout Matrix) {
    x.storage.withUnsafeMutableBufferPointer { p in
        guard let base = p.baseAddress else { return }
        geluTanh(base, p.count)
    }
}

@inlinable func geluTanh(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    inHalves(p, count) { p, count in
        let c = Float8(repeating: -2 * 0.7978845608028654)
        let k = Float8(repeating: 0.044715)
        let one = Float8(repeating: 1)
        mapInPlace(p, count) { v in v / (one + exp8(c * (v + k * v * v * v))) }
    }
}

/// Runs `body` on two halves of a large buffer at once (the machine has two cores to spare
/// between GEMMs); small buffers stay on this thread.
@usableFromInline func inHalves(_ p: UnsafeMutablePointer<Float>, _ count: Int,
                                _ body: @escaping @Sendable (UnsafeMutablePointer<Float>, Int) -> Void) {
    guard count >= 1 << 16 else { return body(p, count) }
    let base = SendablePointer(p)
    let half = (count / 2 + 7) / 8 * 8
    DispatchQueue.concurrentPerform(iterations: 2) { i in
        body(base.pointer! + i * half, i == 0 ? half : count - half)
    }
}

/// GELU, exact erf form ("gelu"): 0.5·x·(1 + erf(x/√2)).
public func geluErf(_ x: inout Matrix) {
    x.storage.withUnsafeMutableBufferPointer { p in
        for i in 0..<p.count { p[i] = 0.5 * p[i] * (1 + erff(p[i] * 0.7071067811865476)) }
    }
}

/// SiLU: x · sigmoid(x).
public func silu(_ x: inout Matrix) {
    x.storage.withUnsafeMutableBufferPointer { p in
        guard let base = p.baseAddress else { return }
        inHalves(base, p.count) { p, count in
            let one = Float8(repeating: 1)
            mapInPlace(p, count) { v in v / (one + exp8(-v)) }
        }
    }
}

/// Numerically stable softmax of every row.
public func softmaxRows(_ x: inout Matrix) {
    let n = x.cols
    guard n > 0 else { return }
    x.storage.withUnsafeMutableBufferPointer { p in
        for r in 0..<x.rows { softmaxRow(p.baseAddress! + r * n, n) }
    }
}

/// Softmax of `count` floats in place; returns nothing, the row sums to 1.
@inlinable @inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ count: Int) {
    let inv = Float8(repeating: 1 / expRow(row, count))
    mapInPlace(row, count) { $0 * inv }
}

/// `row[j] = e^(row[j] - max)` in place (count ≥ 1); returns the sum, the softmax's denominator.
@inlinable @inline(__always)
func expRow(_ row: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    let m = Float8(repeating: maximum(row, count))
    var acc = Float8(repeating: 0)
    var i = 0
    while i + 8 <= count {
        let e = exp8(load8(row + i) - m)
        store8(e, row + i)
        acc += e
        i += 8
    }
    var total = acc.sum()
    while i < count {
        let e = exp1(row[i] - m[0])
        row[i] = e
        total += e
        i += 1
    }
    return total
}

// MARK: - Elementwise

/// `x += y` (same shape).
public func add(_ x: inout Matrix, _ y: Matrix) throws(TensorError) {
    guard x.rows == y.rows, x.cols == y.cols else {
        throw .shapeMismatch(operation: "add", detail: "\(x.rows)x\(x.cols) + \(y.rows)x\(y.cols)")
    }
    x.storage.withUnsafeMutableBufferPointer { px in
        y.storage.withUnsafeBufferPointer { py in
            for i in 0..<px.count { px[i] += py[i] }
        }
    }
}

/// `x *= y` elementwise (same shape).
public func multiply(_ x: inout Matrix, _ y: Matrix) throws(TensorError) {
    guard x.rows == y.rows, x.cols == y.cols else {
        throw .shapeMismatch(operation: "multiply", detail: "\(x.rows)x\(x.cols) * \(y.rows)x\(y.cols)")
    }
    x.storage.withUnsafeMutableBufferPointer { px in
        y.storage.withUnsafeBufferPointer { py in
            for i in 0..<px.count { px[i] *= py[i] }
        }
    }
}

/// Adds `row` to every row of `x` (a broadcast bias or position table row).
public func addRow(_ x: inout Matrix, _ row: [Float]) throws(TensorError) {
    guard row.count == x.cols else {
        throw .shapeMismatch(operation: "addRow", detail: "row of \(row.count) for width \(x.cols)")
    }
    let n = x.cols
    x.storage.withUnsafeMutableBufferPointer { px in
        row.withUnsafeBufferPointer { pr in
            for r in 0..<x.rows {
                for c in 0..<n { px[r * n + c] += pr[c] }
            }
        }
    }
}

/// `x *= s`.
public func scale(_ x: inout Matrix, by s: Float) {
    x.storage.withUnsafeMutableBufferPointer { px in
        for i in 0..<px.count { px[i] *= s }
    }
}
