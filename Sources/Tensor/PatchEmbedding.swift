// A convolution whose kernel equals its stride (a ViT patch embedding) is im2col + one GEMM:
// every patch becomes a row of channels · patch · patch values in the order (channel, y, x),
// which is the order of a PyTorch Conv2d weight [out, channels, patch, patch] flattened.

/// Patches of a channel-first image `pixels` [channels, height, width], raster order of patches:
/// [(height / patch) · (width / patch), channels · patch · patch].
public func im2col(pixels: [Float], channels: Int, height: Int, width: Int, patch: Int) throws(TensorError) -> Matrix {
    guard channels > 0, patch > 0, height % patch == 0, width % patch == 0, height > 0, width > 0 else {
        throw .invalidArgument(operation: "im2col", detail: "\(channels)x\(height)x\(width) image in patches of \(patch)")
    }
    guard pixels.count == channels * height * width else {
        throw .shapeMismatch(operation: "im2col", detail: "\(pixels.count) values for \(channels)x\(height)x\(width)")
    }
    let rowsOfPatches = height / patch, colsOfPatches = width / patch
    let rowWidth = channels * patch * patch
    var out = Matrix(rows: rowsOfPatches * colsOfPatches, cols: rowWidth)
    pixels.withUnsafeBufferPointer { src in
        out.storage.withUnsafeMutableBufferPointer { dst in
            for py in 0..<rowsOfPatches {
                for px in 0..<colsOfPatches {
                    var o = (py * colsOfPatches + px) * rowWidth
                    for c in 0..<channels {
                        for y in 0..<patch {
                            let s = c * height * width + (py * patch + y) * width + px * patch
                            (dst.baseAddress! + o).update(from: src.baseAddress! + s, count: patch)
                            o += patch
                        }
                    }
                }
            }
        }
    }
    return out
}

/// Conv2d(kernel = stride = patch) with `weight` [out, channels · patch · patch] and a bias:
/// [patches, out], raster order of patches.
public func patchEmbedding(pixels: [Float], channels: Int, height: Int, width: Int, patch: Int,
                           weight: Matrix, bias: [Float]?) throws(TensorError) -> Matrix {
    try patchEmbedding(pixels: pixels, channels: channels, height: height, width: width, patch: patch,
                       weight: .stored(weight), bias: bias)
}

/// The same with the weight as `DenseWeights` holds it.
public func patchEmbedding(pixels: [Float], channels: Int, height: Int, width: Int, patch: Int,
                           weight: DenseWeights, bias: [Float]?) throws(TensorError) -> Matrix {
    try linear(im2col(pixels: pixels, channels: channels, height: height, width: width, patch: patch),
               weight: weight, bias: bias)
}
