//! Image samples for tch: decode PNG/JPEG, resize the shorter side, center-crop, convert to a
//! `CHW` `f32` tensor and normalize — torchvision's `Resize → CenterCrop → ToTensor →
//! Normalize`. The pixel work is the framework-neutral
//! [`features::loader::image`](deriva_bag_features::loader::image) pipeline (the TensorFlow adapter uses the same one,
//! in `HWC` order); this module reads the file and writes the values straight into a tensor.
//! Large JPEGs are decoded at a reduced size when the output is small, 16-bit PNGs keep
//! their 16 bits, and [`Channels`] sets the tensor's channels (`[3, H, W]` by default, gray
//! replicated; `[1, H, W]` with [`Channels::Gray`]).
//!
//! ```no_run
//! use deriva_bag_core::torch::image::{ImagePipeline, ToTensor};
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let tensor = pipeline.load("retina_001.jpg".as_ref()).unwrap();
//! assert_eq!(tensor.size(), [3, 224, 224]);
//! ```

use std::path::Path;

pub use deriva_bag_features::loader::image::{
    center_crop, resize_shorter, to_chw, Channels, DecodedImage, Gray16Image, GrayImage,
    ImagePipeline, Layout, PixelView, Pixels, Rgb16Image, RgbImage, IMAGENET_MEAN, IMAGENET_STD,
};
use tch::{Device, Kind, Tensor};

use crate::Error;

/// Reads an image file and decodes it with `decode`, naming the file in any error.
fn read_and_decode<T>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> Result<T, deriva_bag_features::loader::image::ImageError>,
) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and decodes an image file (PNG or JPEG, by content) to 8-bit RGB.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, Error> {
    read_and_decode(path, deriva_bag_features::loader::image::decode_rgb)
}

/// Reads and decodes an image file for `pipeline`: at its own bit depth and channels, and a
/// JPEG at a reduced size when the output is small (see [`ImagePipeline::decode`]).
pub fn decode_for(pipeline: &ImagePipeline, path: &Path) -> Result<DecodedImage, Error> {
    read_and_decode(path, |bytes| pipeline.decode(bytes))
}

/// Loads an image as a `[3, H, W]` `f32` tensor with values in `[0, 1]` (torchvision's
/// `ToTensor`): the simplest `sample_loader`, `|path, _row| load_rgb(path)`.
pub fn load_rgb(path: &Path) -> Result<Tensor, Error> {
    ImagePipeline::new().load(path)
}

/// An [`ImagePipeline`] that ends in a `[C, H, W]` CPU float tensor (`C` from
/// [`ImagePipeline::channels`]).
pub trait ToTensor {
    /// Applies the pipeline to decoded pixels (`&RgbImage`, `&DecodedImage`, `&GrayImage`,
    /// …), writing each value once into a new tensor.
    fn apply<'a>(&self, img: impl Into<PixelView<'a>>) -> Tensor;

    /// Decodes `path` for the pipeline ([`decode_for`]) and applies it: a ready
    /// `sample_loader` body.
    fn load(&self, path: &Path) -> Result<Tensor, Error>;
}

impl ToTensor for ImagePipeline {
    fn apply<'a>(&self, img: impl Into<PixelView<'a>>) -> Tensor {
        let img = img.into();
        let [c, h, w] = self.output_shape(img.dimensions(), Layout::Chw);
        let shape = [c as i64, h as i64, w as i64];
        // A sample tensor that collation already copied into a batch, if any
        // (crate::pool): no fresh pages to fault in per image.
        match crate::pool::take_sample(&shape) {
            Some(t) => fill_float(t, |out| self.apply_into(img, Layout::Chw, out)),
            None => float_tensor_from_fn(&shape, |out| self.apply_into(img, Layout::Chw, out)),
        }
    }

    fn load(&self, path: &Path) -> Result<Tensor, Error> {
        Ok(ToTensor::apply(self, &decode_for(self, path)?))
    }
}

/// A new CPU float tensor of `shape`, filled by `fill` in place.
///
/// Why not `Tensor::from_slice`: libtorch implements it as `zeros` + copy, and `zeros` runs
/// an OpenMP-parallel fill. Called from loader threads on a busy machine, libgomp's
/// spin-waiting made that cost ~5 ms per 224×224 image (11× the JPEG decode). `empty` only
/// allocates, so loader threads never enter libtorch's thread pool.
pub(crate) fn float_tensor_from_fn(shape: &[i64], fill: impl FnOnce(&mut [f32])) -> Tensor {
    fill_float(Tensor::empty(shape, (Kind::Float, Device::Cpu)), fill)
}

/// Writes `t`'s values with `fill`. `t` must be a contiguous CPU float tensor that nothing
/// else refers to: new from `empty`, or from a pool that checked `pool::is_exclusive`.
pub(crate) fn fill_float(t: Tensor, fill: impl FnOnce(&mut [f32])) -> Tensor {
    let n = t.numel();
    if n > 0 {
        // SAFETY: `t` is a contiguous CPU float tensor of `n` elements (new from `empty`,
        // or a pooled one of the requested shape); nothing else refers to its storage
        // while `fill` runs (the callers' contract, checked by the pools).
        let data = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) };
        fill(data);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::loader::image::Rgb;

    #[test]
    fn tensor_holds_the_pipeline_values_in_chw_order() {
        let img = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8, y as u8, 200]));
        let pipeline = ImagePipeline::new()
            .resize(20)
            .center_crop(16, 12)
            .imagenet_normalize();
        let t = ToTensor::apply(&pipeline, &img);
        assert_eq!(t.size(), [3, 12, 16]);
        assert_eq!(t.kind(), Kind::Float);
        let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        assert_eq!(values, pipeline.to_values(&img, Layout::Chw).1);
    }

    #[test]
    fn a_16_bit_gray_png_loads_as_one_or_three_channels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.png");
        Gray16Image::from_raw(3, 1, vec![1, 32768, 65535])
            .unwrap()
            .save(&path)
            .unwrap();
        let v = [1.0 / 65535.0, 32768.0 / 65535.0, 1.0];
        let gray = ImagePipeline::new()
            .channels(Channels::Gray)
            .load(&path)
            .unwrap();
        assert_eq!(gray.size(), [1, 1, 3]);
        let rgb = ImagePipeline::new().load(&path).unwrap();
        assert_eq!(rgb.size(), [3, 1, 3]);
        for (t, expected) in [(gray, v.to_vec()), (rgb, [v, v, v].concat())] {
            let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
            assert_eq!(values.len(), expected.len());
            for (a, b) in values.iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-6 * b, "{values:?} != {expected:?}");
            }
        }
    }

    #[test]
    fn decoding_a_missing_file_names_it() {
        let err = load_rgb(Path::new("/nonexistent/retina.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/retina.png"), "{err}");
    }

    #[test]
    fn decoding_a_file_that_is_not_an_image_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("label.png");
        std::fs::write(&path, b"Glaucoma,No Glaucoma").unwrap();
        let err = decode_rgb(&path).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{err:?}");
        assert!(err.to_string().contains("label.png"), "{err}");
    }
}
