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

use image::imageops::FilterType;
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

/// Resizes so the shorter side is `size`, keeping the aspect ratio (torchvision `Resize(int)`).
pub fn resize_shorter(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.min(h) == size || size == 0 {
        return img.clone();
    }
    let (nw, nh) = if w <= h {
        (
            size,
            ((u64::from(h) * u64::from(size) + u64::from(w) / 2) / u64::from(w)) as u32,
        )
    } else {
        (
            ((u64::from(w) * u64::from(size) + u64::from(h) / 2) / u64::from(h)) as u32,
            size,
        )
    };
    // Triangle = bilinear, with the support widened when downscaling (antialiased), as
    // torchvision's default `Resize(antialias=True)`.
    image::imageops::resize(img, nw.max(1), nh.max(1), FilterType::Triangle)
}

/// Crops the centered `width × height` region (torchvision rounds the offset the same way).
/// A crop larger than the image is clamped to the image.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cw, ch) = (width.min(w), height.min(h));
    let x = ((f64::from(w - cw)) / 2.0).round() as u32;
    let y = ((f64::from(h - ch)) / 2.0).round() as u32;
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
    pub fn apply(&self, img: &RgbImage) -> Tensor {
        let resized;
        let mut current = img;
        if let Some(size) = self.resize {
            resized = resize_shorter(current, size);
            current = &resized;
        }
        let cropped;
        if let Some((w, h)) = self.crop {
            cropped = center_crop(current, w, h);
            current = &cropped;
        }
        let (w, h) = current.dimensions();
        float_tensor_from_fn(&[3, i64::from(h), i64::from(w)], |out| {
            to_chw_into(current, self.mean, self.std, out)
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

    #[test]
    fn decoding_a_missing_file_names_it() {
        let err = load_rgb(Path::new("/nonexistent/retina.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/retina.png"), "{err}");
    }
}
