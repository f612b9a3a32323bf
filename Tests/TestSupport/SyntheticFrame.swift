/// The frames the Qwen2.5-VL fixture scripts draw (tools/make_qwen_fixtures.py's `frame`), bit for
/// bit: a gradient with a yellow box that moves with `index`. Packed RGB24.
public func syntheticFrame(width: Int, height: Int, index: Int) -> [UInt8] {
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    let top = height / 4 + 3 * index, left = width / 2 - 2 * index
    for y in 0..<height {
        for x in 0..<width {
            let o = (y * width + x) * 3
            if y >= top && y < top + height / 4 && x >= left && x < left + width / 4 {
                rgb[o] = 250; rgb[o + 1] = 240; rgb[o + 2] = 30
            } else {
                rgb[o] = UInt8((x * 255) / max(width - 1, 1))
                rgb[o + 1] = UInt8((y * 255) / max(height - 1, 1))
                rgb[o + 2] = UInt8((x * 131 + y * 71 + (x * y) % 97 + 37 * index) % 256)
            }
        }
    }
    return rgb
}
