// Dense kernels: GEMM-backed linear layers, norms, activations, softmax, elementwise helpers.
import CKernels
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
    try checkLayerNorm(x, residualBias: nil, weight: weight, bias: bias)
    if out.rows != x.rows || out.cols != x.cols { out = Matrix(rows: x.rows, cols: x.cols) }
    guard x.cols > 0, x.rows > 0 else { return }
    x.storage.withUnsafeBufferPointer { px in
        out.storage.withUnsafeMutableBufferPointer { po in
            // Without a residual bias the kernel only reads x.
            layerNorm(UnsafeMutablePointer(mutating: px.baseAddress!), rows: x.rows, width: x.cols, residualBias: nil,
                      weight: weight, bias: bias, eps: eps, into: po.baseAddress!)
        }
    }
}

/// LayerNorm of the residual stream `x` into `out`; with `addingBias`, `x` first receives that
/// bias (left out of the projection that last wrote `x`) and keeps it: one pass instead of two.
public func layerNorm(_ x: inout Matrix, addingBias residualBias: [Float]?, weight: [Float], bias: [Float], eps: Float,
                      into out: inout Matrix) throws(TensorError) {
    try checkLayerNorm(x, residualBias: residualBias, weight: weight, bias: bias)
    if out.rows != x.rows || out.cols != x.cols { out = Matrix(rows: x.rows, cols: x.cols) }
    guard x.cols > 0, x.rows > 0 else { return }
    let rows = x.rows, n = x.cols
    x.storage.withUnsafeMutableBufferPointer { px in
        out.storage.withUnsafeMutableBufferPointer { po in
            layerNorm(px.baseAddress!, rows: rows, width: n, residualBias: residualBias, weight: weight, bias: bias,
                      eps: eps, into: po.baseAddress!)
        }
    }
}

private func checkLayerNorm(_ x: Matrix, residualBias: [Float]?, weight: [Float], bias: [Float]) throws(TensorError) {
    guard weight.count == x.cols, bias.count == x.cols, residualBias.map({ $0.count == x.cols }) ?? true else {
        let residual = residualBias.map { ", residual bias \($0.count)" } ?? ""
        throw .shapeMismatch(operation: "layerNorm", detail: "weight \(weight.count), bias \(bias.count)\(residual) for width \(x.cols)")
    }
}

/// Rows split over two threads when large; vectors already checked against `width`.
private func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width n: Int, residualBias: [Float]?, weight: [Float],
                       bias: [Float], eps: Float, into out: UnsafeMutablePointer<Float>) {
    let source = SendablePointer(x), target = SendablePointer(out)
    weight.withUnsafeBufferPointer { pw in
        bias.withUnsafeBufferPointer { pb in
            let w = ReadPointer(pw.baseAddress!), b = ReadPointer(pb.baseAddress!)
            let pass: @Sendable (Range<Int>, UnsafePointer<Float>?) -> Void = { part, residual in
                enc_layer_norm(source.pointer! + part.lowerBound * n, part.count, n, residual,
                               w.pointer, b.pointer, eps, target.pointer! + part.lowerBound * n)
            }
            guard let residualBias else { return inRowHalves(rows, width: n) { part in pass(part, nil) } }
            residualBias.withUnsafeBufferPointer { pr in
                let r = ReadPointer(pr.baseAddress!)
                inRowHalves(rows, width: n) { part in pass(part, r.pointer) }
            }
        }
    }
}

/// Runs `body` on the first and second half of `rows` rows at once when the pass is large enough to
/// repay a hand-off (the machine's two cores are otherwise idle between GEMMs); small passes stay
/// on this thread.
@usableFromInline func inRowHalves(_ rows: Int, width: Int, _ body: @Sendable (Range<Int>) -> Void) {
    guard rows >= 2, rows * width >= 1 << 16 else { return body(0..<rows) }
    let half = rows / 2
    DispatchQueue.concurrentPerform(iterations: 2) { i in body(i == 0 ? 0..<half : half..<rows) }
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
    try? geluTanh(&x, bias: nil)
}

/// `x = gelu_tanh(x + bias)` per row (bias broadcast), one pass: the bias of the projection before
/// the activation costs nothing extra.
public func geluTanh(_ x: inout Matrix, bias: [Float]?) throws(TensorError) {
    if let bias, bias.count != x.cols {
        throw .shapeMismatch(operation: "geluTanh", detail: "bias of \(bias.count) for width \(x.cols)")
    }
    let n = x.cols
    guard n > 0, x.rows > 0 else { return }
    x.storage.withUnsafeMutableBufferPointer { px in
        let base = SendablePointer(px.baseAddress)
        guard let bias else {
            return inRowHalves(x.rows, width: n) { rows in
                enc_bias_gelu_tanh(base.pointer! + rows.lowerBound * n, rows.count, n, n, nil)
            }
        }
        bias.withUnsafeBufferPointer { pb in
            let b = ReadPointer(pb.baseAddress!)
            inRowHalves(x.rows, width: n) { rows in
                enc_bias_gelu_tanh(base.pointer! + rows.lowerBound * n, rows.count, n, n, b.pointer)
            }
        }
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

/// QuickGELU ("quick_gelu", CLIP): x · sigmoid(1.702 · x).
public func quickGelu(_ x: inout Matrix) {
    x.storage.withUnsafeMutableBufferPointer { p in
        guard let base = p.baseAddress else { return }
        inHalves(base, p.count) { p, count in enc_sigmoid_gate(p, count, 1.702) }
    }
}

/// SiLU: x · sigmoid(x).
public func silu(_ x: inout Matrix) {
    x.storage.withUnsafeMutableBufferPointer { p in
        guard let base = p.baseAddress else { return }
        inHalves(base, p.count) { p, count in enc_silu(p, count) }
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
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ count: Int) {
    enc_softmax_row(row, count)
}

/// `row[j] = e^(row[j] - max)` in place (count ≥ 1); returns the sum, the softmax's denominator.
@inline(__always)
func expRow(_ row: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    enc_exp_row(row, count)
}

// MARK: - Elementwise

/// `x += y` (same shape).
public func add(_ x: inout Matrix, _ y: Matrix) throws(TensorError) {
    guard x.rows == y.rows, x.cols == y.cols else {
        throw .shapeMismatch(operation: "add", detail: "\(x.rows)x\(x.cols) + \(y.rows)x\(y.cols)")
    }
    x.storage.withUnsafeMutableBufferPointer { px in
        y.storage.withUnsafeBufferPointer { py in
            guard let target = px.baseAddress, let source = py.baseAddress else { return }
            enc_accumulate_scaled(source, 1, target, px.count)
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
            guard let target = px.baseAddress, let source = pr.baseAddress else { return }
            enc_add_row(target, x.rows, n, n, source)
        }
    }
}

/// `x[r] += table[rows[r]]` for every row of `x` (a position-embedding lookup).
public func addRows(of table: Matrix, at rows: [Int], to x: inout Matrix) throws(TensorError) {
    guard table.cols == x.cols, rows.count == x.rows else {
        throw .shapeMismatch(operation: "addRows", detail: "\(rows.count) rows of a \(table.rows)x\(table.cols) table onto \(x.rows)x\(x.cols)")
    }
    if let bad = rows.first(where: { $0 < 0 || $0 >= table.rows }) {
        throw .invalidArgument(operation: "addRows", detail: "row \(bad) of a table of \(table.rows)")
    }
    let n = x.cols
    guard n > 0 else { return }
    x.storage.withUnsafeMutableBufferPointer { px in
        table.storage.withUnsafeBufferPointer { pt in
            for (r, t) in rows.enumerated() { enc_add_row(px.baseAddress! + r * n, 1, n, n, pt.baseAddress! + t * n) }
        }
    }
}

/// `x *= s`.
public func scale(_ x: inout Matrix, by s: Float) {
    x.storage.withUnsafeMutableBufferPointer { px in
        guard let base = px.baseAddress else { return }
        enc_scale(base, px.count, s)
    }
}
