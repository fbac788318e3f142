//! Framework-neutral image samples: decode PNG/JPEG, resize the shorter side, center-crop,
//! normalize, and write `f32` values in `CHW` (PyTorch) or `HWC` (TensorFlow) order — the
//! torchvision `Resize → CenterCrop → ToTensor → Normalize` chain, computed on `u8` pixels
//! and fused so each output value is written once, straight into the framework's buffer.
//!
//! Both adapters wrap [`ImagePipeline`] (`deriva_bag_torch::image`, `deriva_bag_tf::image`),
//! so a model sees the same pixels whichever framework feeds it. Decoding works on bytes in
//! memory: reading the file is the adapter's job (this crate does no I/O).
//!
//! ```
//! use deriva_bag_features::loader::image::{ImagePipeline, Layout, Rgb, RgbImage};
//! let img = RgbImage::from_pixel(320, 240, Rgb([255, 128, 0]));
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let shape = pipeline.output_shape(img.dimensions(), Layout::Hwc);
//! assert_eq!(shape, [224, 224, 3]);
//! let mut values = vec![0f32; 224 * 224 * 3];
//! pipeline.apply_into(&img, Layout::Hwc, &mut values);
//! assert!((values[0] - (1.0 - 0.485) / 0.229).abs() < 1e-4); // red channel of pixel (0, 0)
//! ```

pub use image::{ImageError, Rgb, RgbImage};

/// ImageNet channel means (torchvision's usual `Normalize` values).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes an encoded image (PNG or JPEG, recognised by content, not by name) to 8-bit RGB.
///
/// ```
/// use deriva_bag_features::loader::image::decode_rgb;
/// assert!(decode_rgb(b"not an image").is_err());
/// ```
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    Ok(image::load_from_memory(bytes)?.into_rgb8())
}

/// The order of the values an [`ImagePipeline`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Channels first, `[3, H, W]`: PyTorch / torchvision `ToTensor`.
    Chw,
    /// Channels last, `[H, W, 3]`: TensorFlow / Keras (`NHWC` once batched).
    Hwc,
}

/// The `(width, height)` that [`resize_shorter`] produces: the shorter side becomes `size`, the
/// other keeps the aspect ratio (rounded half up), never below 1. `size == 0` or an empty image
/// means "no resize".
fn shorter_side_dims(w: u32, h: u32, size: u32) -> (u32, u32) {
    if size == 0 || w == 0 || h == 0 || w.min(h) == size {
        return (w, h);
    }
    let scaled = |long: u32, short: u32| {
        let v = (u64::from(long) * u64::from(size) + u64::from(short) / 2) / u64::from(short);
        u32::try_from(v).unwrap_or(u32::MAX).max(1)
    };
    if w <= h {
        (size, scaled(h, w))
    } else {
        (scaled(w, h), size)
    }
}

/// Precomputed resampling taps along one axis, for a window of output positions.
///
/// Output `i` (relative to the window start) reads source positions
/// `left[i] .. left[i] + count[i]` with weights `weights[i * stride ..][..count[i]]`.
struct AxisTaps {
    left: Vec<usize>,
    count: Vec<usize>,
    stride: usize,
    weights: Vec<f32>,
}

impl AxisTaps {
    /// Triangle (bilinear) taps for `src → dst` samples, for outputs `from .. from + len`.
    ///
    /// The arithmetic copies `image::imageops` `FilterType::Triangle` (f32, pixel centres at
    /// `+0.5`, support widened by the downscale ratio = antialiasing, clamped to the image,
    /// weights normalised to sum 1), so results match `image::imageops::resize` to rounding.
    /// Zero-weight taps at either end are dropped, which makes an unscaled axis a plain copy.
    fn triangle(src: u32, dst: u32, from: u32, len: u32) -> AxisTaps {
        let ratio = src as f32 / dst as f32;
        let sratio = ratio.max(1.0);
        let support = sratio; // the triangle kernel's support is 1
        let stride = (2.0 * support).ceil() as usize + 3;
        let mut taps = AxisTaps {
            left: Vec::with_capacity(len as usize),
            count: Vec::with_capacity(len as usize),
            stride,
            weights: vec![0.0; stride * len as usize],
        };
        let mut ws = Vec::with_capacity(stride);
        for (i, out) in (from..from + len).enumerate() {
            let centre = (out as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, i64::from(src) - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, i64::from(src));
            let centre = centre - 0.5;
            ws.clear();
            ws.extend((left..right).map(|s| (1.0 - ((s as f32 - centre) / sratio).abs()).max(0.0)));
            let sum: f32 = ws.iter().sum();
            // Trim zero weights so that e.g. a 1:1 axis reads exactly one pixel.
            let first = ws.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = ws
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(ws.len(), |p| p + 1);
            let kept = &ws[first..last.max(first + 1)];
            let row = &mut taps.weights[i * stride..][..kept.len()];
            for (slot, w) in row.iter_mut().zip(kept) {
                *slot = if sum > 0.0 { w / sum } else { 1.0 };
            }
            taps.left.push(left as usize + first);
            taps.count.push(kept.len());
        }
        taps
    }

    fn get(&self, i: usize) -> (usize, &[f32]) {
        (
            self.left[i],
            &self.weights[i * self.stride..][..self.count[i]],
        )
    }

    /// The source range `[lo, hi)` read by any output.
    fn span(&self) -> (usize, usize) {
        let lo = self.left.iter().copied().min().unwrap_or(0);
        let hi = (0..self.left.len())
            .map(|i| self.left[i] + self.count[i])
            .max()
            .unwrap_or(0);
        (lo, hi.max(lo))
    }
}

/// Resamples `img` to `nw × nh` (Triangle filter) but computes only the window
/// `x0 .. x0 + cw`, `y0 .. y0 + ch` of the result, calling `emit_row(y, rgb)` for each
/// window row `y` with `3 × cw` interleaved, unrounded `[0, 255]` values.
///
/// Separable: each output row first blends the few source rows it needs (a contiguous
/// multiply-add over only the source columns the window reads, which the compiler
/// vectorises), then blends columns with a tap count fixed at compile time (unrolled, no
/// bounds checks). Vertical first, as `image` does, so both agree.
///
/// On x86-64 CPUs with AVX2 and FMA (checked once per call, at run time) the same code is
/// compiled for those instructions: 8-wide multiply-adds make resampling about twice as fast
/// as the SSE2 baseline build, and the binary still runs on any x86-64.
fn resample_window<F: FnMut(usize, &[f32])>(
    img: &RgbImage,
    size: (u32, u32),
    origin: (u32, u32),
    window: (u32, u32),
    emit_row: F,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports every feature `resample_window_avx2` is compiled for.
        unsafe { resample_window_avx2(img, size, origin, window, emit_row) };
        return;
    }
    resample_window_body(img, size, origin, window, emit_row);
}

/// [`resample_window_body`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn resample_window_avx2<F: FnMut(usize, &[f32])>(
    img: &RgbImage,
    size: (u32, u32),
    origin: (u32, u32),
    window: (u32, u32),
    emit_row: F,
) {
    resample_window_body(img, size, origin, window, emit_row);
}

/// The resampler itself; always inlined so that each caller compiles it for its own
/// target features.
#[inline(always)]
fn resample_window_body<F: FnMut(usize, &[f32])>(
    img: &RgbImage,
    (nw, nh): (u32, u32),
    (x0, y0): (u32, u32),
    (cw, ch): (u32, u32),
    mut emit_row: F,
) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || cw == 0 || ch == 0 {
        return;
    }
    let raw = img.as_raw();
    let row_len = 3 * w as usize;
    let mut out = vec![0f32; 3 * cw as usize];
    if (nw, nh) == (w, h) {
        for y in 0..ch as usize {
            let row = &raw[(y0 as usize + y) * row_len + 3 * x0 as usize..][..out.len()];
            for (o, &p) in out.iter_mut().zip(row) {
                *o = f32::from(p);
            }
            emit_row(y, &out);
        }
        return;
    }
    let cols = AxisTaps::triangle(w, nw, x0, cw);
    let rows = AxisTaps::triangle(h, nh, y0, ch);
    let (lo, hi) = cols.span();
    let taps = cols.count.iter().copied().max().unwrap_or(1);
    // Zero tail so that every column reads a full `taps` pixels (extra weights are 0).
    let mut line = vec![0f32; 3 * (hi - lo + taps)];
    let used = 3 * (hi - lo);
    for y in 0..ch as usize {
        let (top, weights) = rows.get(y);
        line[..used].fill(0.0);
        for (k, &wt) in weights.iter().enumerate() {
            let start = (top + k) * row_len + 3 * lo;
            for (acc, &p) in line[..used].iter_mut().zip(&raw[start..start + used]) {
                *acc += wt * f32::from(p);
            }
        }
        match taps {
            1 => blend_columns::<1>(&line, &cols, lo, &mut out),
            2 => blend_columns::<2>(&line, &cols, lo, &mut out),
            3 => blend_columns::<3>(&line, &cols, lo, &mut out),
            4 => blend_columns::<4>(&line, &cols, lo, &mut out),
            5 => blend_columns::<5>(&line, &cols, lo, &mut out),
            6 => blend_columns::<6>(&line, &cols, lo, &mut out),
            _ => blend_columns_any(&line, &cols, lo, taps, &mut out),
        }
        emit_row(y, &out);
    }
}

/// Horizontal pass with exactly `N` taps per output pixel (zero-padded weights).
#[inline(always)]
fn blend_columns<const N: usize>(line: &[f32], cols: &AxisTaps, lo: usize, out: &mut [f32]) {
    for (x, o) in out.chunks_exact_mut(3).enumerate() {
        let w = &cols.weights[x * cols.stride..x * cols.stride + N];
        let start = 3 * (cols.left[x] - lo);
        let px = &line[start..start + 3 * N];
        let mut rgb = [0f32; 3];
        for k in 0..N {
            rgb[0] += w[k] * px[3 * k];
            rgb[1] += w[k] * px[3 * k + 1];
            rgb[2] += w[k] * px[3 * k + 2];
        }
        o.copy_from_slice(&rgb);
    }
}

/// [`blend_columns`] for a tap count only known at run time (strong downscales).
#[inline(always)]
fn blend_columns_any(line: &[f32], cols: &AxisTaps, lo: usize, taps: usize, out: &mut [f32]) {
    for (x, o) in out.chunks_exact_mut(3).enumerate() {
        let w = &cols.weights[x * cols.stride..][..taps];
        let start = 3 * (cols.left[x] - lo);
        let mut rgb = [0f32; 3];
        for (p, &wt) in line[start..start + 3 * taps].chunks_exact(3).zip(w) {
            rgb[0] += wt * p[0];
            rgb[1] += wt * p[1];
            rgb[2] += wt * p[2];
        }
        o.copy_from_slice(&rgb);
    }
}

/// The centered `width × height` window of a `w × h` image (clamped), as `(x0, y0, cw, ch)`;
/// torchvision rounds the offset the same way.
fn center_window(w: u32, h: u32, width: u32, height: u32) -> (u32, u32, u32, u32) {
    let (cw, ch) = (width.min(w), height.min(h));
    let x = (f64::from(w - cw) / 2.0).round() as u32;
    let y = (f64::from(h - ch) / 2.0).round() as u32;
    (x, y, cw, ch)
}

/// Resizes so the shorter side is `size`, keeping the aspect ratio (torchvision `Resize(int)`).
///
/// Bilinear with the support widened when downscaling (antialiased), as torchvision's
/// default `Resize(antialias=True)` and `image`'s `FilterType::Triangle`; our own separable
/// resampler with precomputed weights is ~7× faster than `image::imageops::resize` (256 → 224).
pub fn resize_shorter(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = shorter_side_dims(w, h, size);
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    let mut out = RgbImage::new(nw, nh);
    let buf: &mut [u8] = &mut out;
    let stride = 3 * nw as usize;
    resample_window(img, (nw, nh), (0, 0), (nw, nh), |y, rgb| {
        for (d, &v) in buf[y * stride..][..stride].iter_mut().zip(rgb) {
            // Values are in [0, 255] (non-negative weights summing to 1); `as` saturates,
            // and `+ 0.5` rounds without a libm call.
            *d = (v + 0.5) as u8;
        }
    });
    out
}

/// Crops the centered `width × height` region (torchvision rounds the offset the same way).
/// A crop larger than the image is clamped to the image.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (x, y, cw, ch) = center_window(w, h, width, height);
    image::imageops::crop_imm(img, x, y, cw, ch).to_image()
}

/// `HWC u8` pixels → `CHW f32` values `(p / 255 - mean) / std`, in one pass (no resize,
/// no crop).
pub fn to_chw(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    ImagePipeline::new()
        .normalize(mean, std)
        .to_values(img, Layout::Chw)
        .1
}

/// A decode → resize → crop → normalize pipeline producing `f32` values in a chosen [`Layout`].
///
/// Without [`normalize`](Self::normalize), values are in `[0, 1]` (torchvision `ToTensor`,
/// TensorFlow `convert_image_dtype`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePipeline {
    resize: Option<u32>,
    crop: Option<(u32, u32)>,
    mean: [f32; 3],
    std: [f32; 3],
}

impl Default for ImagePipeline {
    fn default() -> Self {
        ImagePipeline {
            resize: None,
            crop: None,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
}

impl ImagePipeline {
    /// No resize, no crop, values in `[0, 1]`.
    pub fn new() -> Self {
        ImagePipeline::default()
    }

    /// Resizes the shorter side to `size`, keeping the aspect ratio (see [`resize_shorter`]).
    pub fn resize(mut self, size: u32) -> Self {
        self.resize = Some(size);
        self
    }

    /// Center-crops to `width × height` after resizing (clamped to the image).
    pub fn center_crop(mut self, width: u32, height: u32) -> Self {
        self.crop = Some((width, height));
        self
    }

    /// Normalizes each channel: `(x - mean) / std` on `[0, 1]` values.
    pub fn normalize(mut self, mean: [f32; 3], std: [f32; 3]) -> Self {
        self.mean = mean;
        self.std = std;
        self
    }

    /// Normalizes with [`IMAGENET_MEAN`] and [`IMAGENET_STD`].
    pub fn imagenet_normalize(self) -> Self {
        self.normalize(IMAGENET_MEAN, IMAGENET_STD)
    }

    /// The resized size and the crop window in it: `((nw, nh), (x0, y0, cw, ch))`.
    fn geometry(&self, (w, h): (u32, u32)) -> ((u32, u32), (u32, u32, u32, u32)) {
        let (nw, nh) = shorter_side_dims(w, h, self.resize.unwrap_or(0));
        let window = match self.crop {
            Some((cw, ch)) => center_window(nw, nh, cw, ch),
            None => (0, 0, nw, nh),
        };
        ((nw, nh), window)
    }

    /// The shape of the output for an image of `(width, height)` pixels.
    pub fn output_shape(&self, dimensions: (u32, u32), layout: Layout) -> [usize; 3] {
        let (_, (_, _, cw, ch)) = self.geometry(dimensions);
        match layout {
            Layout::Chw => [3, ch as usize, cw as usize],
            Layout::Hwc => [ch as usize, cw as usize, 3],
        }
    }

    /// Applies the pipeline to decoded pixels, writing `3 × H × W` values into `out` in
    /// `layout` order (`H × W` from [`output_shape`](Self::output_shape)).
    ///
    /// Resize, crop, layout and normalization are fused: only the cropped window of the
    /// resized image is computed, and each value is written once. Unlike chaining
    /// [`resize_shorter`] and [`center_crop`], resized values are not rounded to `u8` in
    /// between (they differ by at most 0.5/255 before normalization).
    ///
    /// # Panics
    /// When `out.len()` is not the product of [`output_shape`](Self::output_shape): the
    /// caller sizes the buffer, so a mismatch is a bug in the caller, not bad input.
    pub fn apply_into(&self, img: &RgbImage, layout: Layout, out: &mut [f32]) {
        let ((nw, nh), (x0, y0, cw, ch)) = self.geometry(img.dimensions());
        let (row, plane) = (cw as usize, cw as usize * ch as usize);
        assert_eq!(
            out.len(),
            3 * plane,
            "output buffer for a {cw}x{ch} RGB image must hold {} values",
            3 * plane
        );
        let (scale, shift) = self.affine();
        match layout {
            Layout::Chw => {
                let (r, rest) = out.split_at_mut(plane);
                let (g, b) = rest.split_at_mut(plane);
                resample_window(img, (nw, nh), (x0, y0), (cw, ch), |y, rgb| {
                    let (r, g, b) = (
                        &mut r[y * row..][..row],
                        &mut g[y * row..][..row],
                        &mut b[y * row..][..row],
                    );
                    for (x, px) in rgb.chunks_exact(3).enumerate() {
                        r[x] = px[0] * scale[0] - shift[0];
                        g[x] = px[1] * scale[1] - shift[1];
                        b[x] = px[2] * scale[2] - shift[2];
                    }
                });
            }
            Layout::Hwc => {
                resample_window(img, (nw, nh), (x0, y0), (cw, ch), |y, rgb| {
                    normalize_interleaved(rgb, scale, shift, &mut out[3 * y * row..][..3 * row]);
                });
            }
        }
    }

    /// [`apply_into`](Self::apply_into) a new vector; returns it with its shape.
    pub fn to_values(&self, img: &RgbImage, layout: Layout) -> ([usize; 3], Vec<f32>) {
        let shape = self.output_shape(img.dimensions(), layout);
        let len = shape.iter().product();
        if layout == Layout::Chw {
            let mut out = vec![0f32; len];
            self.apply_into(img, layout, &mut out);
            return (shape, out);
        }
        // `HWC` rows arrive in order, so each is normalized straight into the vector's
        // spare capacity: no zeroing first and no second copy (each would cost 600 KB of
        // memory traffic per 224² image, a fifth of the resize).
        let ((nw, nh), (x0, y0, cw, ch)) = self.geometry(img.dimensions());
        let (scale, shift) = self.affine();
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let row = 3 * cw as usize;
        let mut filled_rows = 0;
        resample_window(img, (nw, nh), (x0, y0), (cw, ch), |y, rgb| {
            // Rows come in order 0, 1, …; anything else would leave a gap, so it is ignored
            // and caught by the assertion below.
            if y != filled_rows {
                return;
            }
            let slots = &mut out.spare_capacity_mut()[y * row..][..row];
            for (o, px) in slots.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
                o[0].write(px[0] * scale[0] - shift[0]);
                o[1].write(px[1] * scale[1] - shift[1]);
                o[2].write(px[2] * scale[2] - shift[2]);
            }
            filled_rows += 1;
        });
        // Every row written, in order: `ch × row = len` values (0 for an empty window).
        assert_eq!(
            filled_rows * row,
            len,
            "the resampler emits every row in order"
        );
        // SAFETY: rows `0..filled_rows` were each written in full (`row` values), so the
        // first `filled_rows × row` elements are initialized.
        unsafe { out.set_len(filled_rows * row) };
        (shape, out)
    }

    /// `x / 255` then `(x - mean) / std`, as one multiply-add per value: `(scale, shift)`.
    fn affine(&self) -> ([f32; 3], [f32; 3]) {
        (
            std::array::from_fn(|c| 1.0 / (255.0 * self.std[c])),
            std::array::from_fn(|c| self.mean[c] / self.std[c]),
        )
    }
}

/// Normalizes one row of interleaved `[0, 255]` RGB values into `out` (same length).
#[inline(always)]
fn normalize_interleaved(rgb: &[f32], scale: [f32; 3], shift: [f32; 3], out: &mut [f32]) {
    for (o, px) in out.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
        o[0] = px[0] * scale[0] - shift[0];
        o[1] = px[1] * scale[1] - shift[1];
        o[2] = px[2] * scale[2] - shift[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 200]))
    }

    #[test]
    fn resize_shorter_keeps_the_aspect_ratio() {
        assert_eq!(resize_shorter(&gradient(64, 48), 24).dimensions(), (32, 24));
        assert_eq!(resize_shorter(&gradient(48, 64), 24).dimensions(), (24, 32));
        assert_eq!(resize_shorter(&gradient(10, 10), 10).dimensions(), (10, 10));
    }

    #[test]
    fn center_crop_takes_the_middle() {
        let c = center_crop(&gradient(10, 6), 4, 2);
        assert_eq!(c.dimensions(), (4, 2));
        assert_eq!(c.get_pixel(0, 0), &Rgb([3, 2, 200]));
    }

    fn assert_close(found: &[f32], expected: &[f32]) {
        assert_eq!(found.len(), expected.len());
        assert!(
            found
                .iter()
                .zip(expected)
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{found:?} != {expected:?}"
        );
    }

    #[test]
    fn chw_values_are_normalized_per_channel() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let (shape, v) = ImagePipeline::new()
            .normalize([0.5, 0.5, 0.0], [0.5, 0.5, 1.0])
            .to_values(&img, Layout::Chw);
        assert_eq!(shape, [3, 1, 2]);
        assert_close(&v, &[1.0, 1.0, -1.0, -1.0, 0.2, 0.2]);
    }

    #[test]
    fn hwc_values_interleave_the_channels() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let (shape, v) = ImagePipeline::new()
            .normalize([0.5, 0.5, 0.0], [0.5, 0.5, 1.0])
            .to_values(&img, Layout::Hwc);
        assert_eq!(shape, [1, 2, 3]);
        assert_close(&v, &[1.0, -1.0, 0.2, 1.0, -1.0, 0.2]);
    }

    #[test]
    fn hwc_is_the_transpose_of_chw_after_resize_and_crop() {
        let img = smooth(97, 131);
        let pipeline = ImagePipeline::new()
            .resize(50)
            .center_crop(40, 30)
            .imagenet_normalize();
        let (chw_shape, chw) = pipeline.to_values(&img, Layout::Chw);
        let (hwc_shape, hwc) = pipeline.to_values(&img, Layout::Hwc);
        assert_eq!(chw_shape, [3, 30, 40]);
        assert_eq!(hwc_shape, [30, 40, 3]);
        for c in 0..3 {
            for y in 0..30 {
                for x in 0..40 {
                    assert_eq!(chw[(c * 30 + y) * 40 + x], hwc[(y * 40 + x) * 3 + c]);
                }
            }
        }
    }

    #[test]
    fn an_empty_image_gives_no_values() {
        for layout in [Layout::Chw, Layout::Hwc] {
            let (shape, v) = ImagePipeline::new()
                .resize(8)
                .center_crop(4, 4)
                .to_values(&RgbImage::new(0, 5), layout);
            assert_eq!(shape.iter().product::<usize>(), 0, "{layout:?}");
            assert!(v.is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "must hold 12 values")]
    fn a_wrongly_sized_buffer_is_a_caller_bug() {
        let img = RgbImage::from_pixel(2, 2, Rgb([1, 2, 3]));
        ImagePipeline::new().apply_into(&img, Layout::Hwc, &mut [0.0; 11]);
    }

    #[test]
    fn decode_reads_png_and_jpeg_by_content() {
        let img = gradient(8, 6);
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let mut bytes = std::io::Cursor::new(Vec::new());
            img.write_to(&mut bytes, format).unwrap();
            let decoded = decode_rgb(bytes.get_ref()).unwrap();
            assert_eq!(decoded.dimensions(), (8, 6), "{format:?}");
            if format == image::ImageFormat::Png {
                assert_eq!(decoded, img);
            }
        }
        assert!(decode_rgb(&[0x89, b'P', b'N', b'G']).is_err());
    }

    #[test]
    fn pipeline_resizes_then_crops() {
        let (shape, v) = ImagePipeline::new()
            .resize(24)
            .center_crop(20, 20)
            .to_values(&gradient(64, 48), Layout::Chw);
        assert_eq!(shape, [3, 20, 20]);
        assert_eq!(v.len(), 3 * 20 * 20);
    }

    /// A smooth but non-separable test image: diagonal ramps plus a product term.
    fn smooth(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            Rgb([
                (255.0 * fx) as u8,
                (255.0 * (0.5 * fx + 0.5 * fy)) as u8,
                (255.0 * fx * fy) as u8,
            ])
        })
    }

    fn max_abs_diff(a: &RgbImage, b: &RgbImage) -> u8 {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(p, q)| p.abs_diff(*q))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn resize_shorter_matches_image_triangle_resize_within_one_level() {
        // Downscale (the 256 → 224 benchmark case), strong downscale, upscale, non-square.
        for ((w, h), size) in [
            ((256, 256), 224),
            ((300, 200), 64),
            ((40, 30), 90),
            ((97, 131), 50),
        ] {
            let img = smooth(w, h);
            let ours = resize_shorter(&img, size);
            let (nw, nh) = ours.dimensions();
            let theirs =
                image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
            // Same weights; both keep f32 between the passes and round once at the end, so
            // only the f32 summation order differs.
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff <= 1, "{w}x{h} -> {nw}x{nh}: max diff {diff}");
        }
    }

    #[test]
    fn fused_pipeline_equals_resize_crop_to_chw_within_rounding() {
        for ((w, h), size, (cw, ch)) in [
            ((256, 256), 224, (224, 224)),
            ((320, 240), 100, (90, 80)),
            ((50, 70), 120, (120, 130)),
            ((64, 48), 48, (20, 30)),
        ] {
            let img = smooth(w, h);
            let (_, fused) = ImagePipeline::new()
                .resize(size)
                .center_crop(cw, ch)
                .imagenet_normalize()
                .to_values(&img, Layout::Chw);
            let staged = to_chw(
                &center_crop(&resize_shorter(&img, size), cw, ch),
                IMAGENET_MEAN,
                IMAGENET_STD,
            );
            assert_eq!(fused.len(), staged.len(), "{w}x{h} size {size}");
            // Staged rounds to u8 before normalizing: at most 0.5/255/std apart (+ f32 noise).
            let tol = 0.5 / 255.0 / 0.224 + 1e-4;
            for (i, (a, b)) in fused.iter().zip(&staged).enumerate() {
                assert!(
                    (a - b).abs() <= tol,
                    "{w}x{h} size {size}, value {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn pipeline_without_resize_crops_exact_pixels() {
        let (shape, v) = ImagePipeline::new()
            .center_crop(4, 2)
            .to_values(&gradient(10, 6), Layout::Chw);
        assert_eq!(shape, [3, 2, 4]);
        let expected_r: Vec<f32> = [3, 4, 5, 6, 3, 4, 5, 6]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let expected_g: Vec<f32> = [2, 2, 2, 2, 3, 3, 3, 3]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        let expected_b = vec![200.0 / 255.0; 8];
        let expected: Vec<f32> = [expected_r, expected_g, expected_b].concat();
        assert!(
            v.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v:?} != {expected:?}"
        );
    }
}
