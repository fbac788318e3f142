//! Image samples for TensorFlow: decode PNG/JPEG, resize the shorter side, center-crop and
//! normalize into a `float32 [H, W, 3]` sample (channels last, as Keras and `tf.image`
//! expect; batches become `NHWC`). The pixel work is the framework-neutral
//! [`features::loader::image`](deriva_bag_features::loader::image) pipeline, the one the PyTorch adapter uses in
//! `CHW` order, so both frameworks see the same values. Large JPEGs are decoded at a
//! reduced size when the output is small, 16-bit PNGs keep their 16 bits, and [`Channels`]
//! sets the sample's channels (`[H, W, 3]` by default, gray replicated; `[H, W, 1]` with
//! [`Channels::Gray`]).
//!
//! ```no_run
//! use deriva_bag_core::tf::image::{ImagePipeline, ToSample};
//! use deriva_bag_core::tf::TfOptions;
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let sample = pipeline.load("retina_001.jpg".as_ref()).unwrap();
//! assert_eq!(sample.shape(), [224, 224, 3]);
//! let options = TfOptions::default().sample_loader(move |path, _row| pipeline.load(path));
//! # let _ = options;
//! ```

use std::path::Path;

pub use deriva_bag_features::loader::image::{
    center_crop, resize_shorter, Channels, DecodedImage, Gray16Image, GrayImage, ImagePipeline,
    Layout, PixelView, Pixels, Rgb16Image, RgbImage, IMAGENET_MEAN, IMAGENET_STD,
};

use crate::{Error, TfSample};

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

/// Loads an image as `float32 [H, W, 3]` with values in `[0, 1]` (`tf.io.decode_image` then
/// `tf.image.convert_image_dtype(.., tf.float32)`): the simplest `sample_loader`.
pub fn load_rgb(path: &Path) -> Result<TfSample, Error> {
    ImagePipeline::new().load(path)
}

/// Loads an image as its `uint8 [H, W, 3]` pixels (`tf.io.decode_image(.., channels=3)`), for
/// graphs that convert and augment on their own.
pub fn load_rgb_u8(path: &Path) -> Result<TfSample, Error> {
    let img = decode_rgb(path)?;
    let (w, h) = img.dimensions();
    Ok(TfSample::UInt8 {
        shape: vec![u64::from(h), u64::from(w), 3],
        data: img.into_raw(),
    })
}

/// An [`ImagePipeline`] that ends in a `float32 [H, W, C]` [`TfSample`] (`C` from
/// [`ImagePipeline::channels`]).
pub trait ToSample {
    /// Applies the pipeline to decoded pixels (`&RgbImage`, `&DecodedImage`, `&GrayImage`,
    /// …).
    fn apply<'a>(&self, img: impl Into<PixelView<'a>>) -> TfSample;

    /// Decodes `path` for the pipeline ([`decode_for`]) and applies it: a ready
    /// `sample_loader` body.
    fn load(&self, path: &Path) -> Result<TfSample, Error>;
}

impl ToSample for ImagePipeline {
    fn apply<'a>(&self, img: impl Into<PixelView<'a>>) -> TfSample {
        let (shape, data) = self.to_values(img, Layout::Hwc);
        TfSample::Float {
            shape: shape.iter().map(|&d| d as u64).collect(),
            data,
        }
    }

    fn load(&self, path: &Path) -> Result<TfSample, Error> {
        Ok(ToSample::apply(self, &decode_for(self, path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::loader::image::Rgb;

    fn write_png(dir: &Path, img: &RgbImage) -> std::path::PathBuf {
        let path = dir.join("retina.png");
        img.save(&path).unwrap();
        path
    }

    #[test]
    fn samples_are_channels_last_float32() {
        let img = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8, y as u8, 200]));
        let pipeline = ImagePipeline::new()
            .resize(20)
            .center_crop(16, 12)
            .imagenet_normalize();
        let sample = ToSample::apply(&pipeline, &img);
        assert_eq!(sample.shape(), [12, 16, 3]);
        let TfSample::Float { data, .. } = sample else {
            panic!("not float32: {sample:?}");
        };
        assert_eq!(data, pipeline.to_values(&img, Layout::Hwc).1);
    }

    #[test]
    fn load_rgb_scales_pixels_to_unit_range_and_u8_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_pixel(3, 2, Rgb([255, 0, 51]));
        let path = write_png(dir.path(), &img);
        let TfSample::Float { shape, data } = load_rgb(&path).unwrap() else {
            panic!("not float32");
        };
        assert_eq!(shape, [2, 3, 3]);
        let expected = [1.0, 0.0, 0.2];
        assert!(
            data[..3]
                .iter()
                .zip(expected)
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{:?} != {expected:?}",
            &data[..3]
        );
        let raw = load_rgb_u8(&path).unwrap();
        assert_eq!(raw.shape(), [2, 3, 3]);
        assert_eq!(raw, TfSample::uint8([2, 3, 3], img.into_raw()).unwrap());
    }

    #[test]
    fn an_8_bit_gray_png_loads_as_one_or_three_channels_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.png");
        GrayImage::from_raw(2, 1, vec![51, 255])
            .unwrap()
            .save(&path)
            .unwrap();
        let gray = ImagePipeline::new()
            .channels(Channels::Gray)
            .load(&path)
            .unwrap();
        let rgb = ImagePipeline::new().load(&path).unwrap();
        for (sample, shape, expected) in [
            (gray, [1, 2, 1], vec![0.2, 1.0]),
            (rgb, [1, 2, 3], vec![0.2, 0.2, 0.2, 1.0, 1.0, 1.0]),
        ] {
            let TfSample::Float { shape: found, data } = sample else {
                panic!("not float32: {sample:?}");
            };
            assert_eq!(found, shape);
            assert_eq!(data.len(), expected.len());
            for (a, b) in data.iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-6, "{data:?} != {expected:?}");
            }
        }
    }

    #[test]
    fn decoding_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.jpg");
        let err = load_rgb(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.jpg"), "{err}");
        let text = dir.path().join("label.png");
        std::fs::write(&text, b"Glaucoma").unwrap();
        let err = load_rgb(&text).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{err:?}");
        assert!(err.to_string().contains("label.png"), "{err}");
    }
}
