//! Image samples for tch: decode PNG/JPEG, resize the shorter side, center-crop, convert to a
//! `CHW` `f32` tensor and normalize — torchvision's `Resize → CenterCrop → ToTensor →
//! Normalize`, done on `u8` pixels until the last step so it stays cheap.
//!
//! ```no_run
//! use deriva_bag_torch::image::ImagePipeline;
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let tensor = pipeline.load("retina_001.jpg".as_ref()).unwrap();
//! assert_eq!(tensor.size(), [3, 224, 224]);
//! ```

use std::path::Path;

use image::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::Error;

/// ImageNet channel means (torchvision's usual `Normalize` values).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes an image file (PNG or JPEG, by content) to 8-bit RGB.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, Error> {
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let decoded = reader.decode().map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(decoded.into_rgb8())
}

/// Loads an image as a `[3, H, W]` `f32` tensor with values in `[0, 1]` (torchvision's
/// `ToTensor`): the simplest `sample_loader`, `|path, _row| load_rgb(path)`.
pub fn load_rgb(path: &Path) -> Result<Tensor, Error> {
    ImagePipeline::new().load(path)
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
fn resample_window(
    img: &RgbImage,
    (nw, nh): (u32, u32),
    (x0, y0): (u32, u32),
    (cw, ch): (u32, u32),
    mut emit_row: impl FnMut(usize, &[f32]),
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

/// `HWC u8` pixels → `CHW f32` values `(p / 255 - mean) / std`, in one pass.
pub fn to_chw(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let mut out = vec![0f32; 3 * (w * h) as usize];
    to_chw_into(img, mean, std, &mut out);
    out
}

/// [`to_chw`] into `out` (length `3 × width × height`).
fn to_chw_into(img: &RgbImage, mean: [f32; 3], std: [f32; 3], out: &mut [f32]) {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| mean[c] / std[c]);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) * scale[0] - shift[0];
        g[i] = f32::from(px[1]) * scale[1] - shift[1];
        b[i] = f32::from(px[2]) * scale[2] - shift[2];
    }
}

/// A new CPU float tensor of `shape`, filled by `fill` in place.
///
/// Why not `Tensor::from_slice`: libtorch implements it as `zeros` + copy, and `zeros` runs
/// an OpenMP-parallel fill. Called from loader threads on a busy machine, libgomp's
/// spin-waiting made that cost ~5 ms per 224×224 image (11× the JPEG decode). `empty` only
/// allocates, so loader threads never enter libtorch's thread pool.
pub(crate) fn float_tensor_from_fn(shape: &[i64], fill: impl FnOnce(&mut [f32])) -> Tensor {
    let t = Tensor::empty(shape, (Kind::Float, Device::Cpu));
    let n = shape.iter().product::<i64>().max(0) as usize;
    if n > 0 {
        // SAFETY: `t` was just allocated by `empty` as a contiguous CPU float tensor of `n`
        // elements; nothing else refers to its storage while `fill` runs.
        let data = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) };
        fill(data);
    }
    t
}

/// A decode → resize → crop → tensor → normalize pipeline, usable as a `sample_loader`.
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

    /// Resizes the shorter side to `size`.
    pub fn resize(mut self, size: u32) -> Self {
        self.resize = Some(size);
        self
    }

    /// Center-crops to `width × height` after resizing.
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

    /// Applies the pipeline to decoded pixels.
    ///
    /// Resize, crop, `CHW` layout and normalization are fused: only the cropped window of the
    /// resized image is computed, and each value is written once, straight into the tensor.
    /// Unlike chaining [`resize_shorter`] and [`center_crop`], resized values are not rounded
    /// to `u8` in between (they differ by at most 0.5/255 before normalization).
    pub fn apply(&self, img: &RgbImage) -> Tensor {
        let (w, h) = img.dimensions();
        let (nw, nh) = shorter_side_dims(w, h, self.resize.unwrap_or(0));
        let (x0, y0, cw, ch) = match self.crop {
            Some((cw, ch)) => center_window(nw, nh, cw, ch),
            None => (0, 0, nw, nh),
        };
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        let (row, plane) = (cw as usize, cw as usize * ch as usize);
        float_tensor_from_fn(&[3, i64::from(ch), i64::from(cw)], |out| {
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
        })
    }

    /// Decodes `path` and applies the pipeline.
    pub fn load(&self, path: &Path) -> Result<Tensor, Error> {
        Ok(self.apply(&decode_rgb(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

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

    #[test]
    fn chw_tensor_is_normalized_per_channel() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let t = ImagePipeline::new()
            .normalize([0.5, 0.5, 0.0], [0.5, 0.5, 1.0])
            .apply(&img);
        assert_eq!(t.size(), [3, 1, 2]);
        assert_eq!(t.kind(), tch::Kind::Float);
        let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        let expected = [1.0, 1.0, -1.0, -1.0, 0.2, 0.2];
        assert!(
            v.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v:?} != {expected:?}"
        );
    }

    #[test]
    fn pipeline_resizes_then_crops() {
        let t = ImagePipeline::new()
            .resize(24)
            .center_crop(20, 20)
            .apply(&gradient(64, 48));
        assert_eq!(t.size(), [3, 20, 20]);
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
            let fused = ImagePipeline::new()
                .resize(size)
                .center_crop(cw, ch)
                .imagenet_normalize()
                .apply(&img);
            let staged = to_chw(
                &center_crop(&resize_shorter(&img, size), cw, ch),
                IMAGENET_MEAN,
                IMAGENET_STD,
            );
            let fused = Vec::<f32>::try_from(fused.flatten(0, -1)).unwrap();
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
        let t = ImagePipeline::new()
            .center_crop(4, 2)
            .apply(&gradient(10, 6));
        assert_eq!(t.size(), [3, 2, 4]);
        let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
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

    #[test]
    fn decoding_a_missing_file_names_it() {
        let err = load_rgb(Path::new("/nonexistent/retina.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/retina.png"), "{err}");
    }
}
