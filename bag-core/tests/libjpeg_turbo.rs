//! The `libjpeg-turbo` feature on the fixtures' fundus photographs: libjpeg-turbo's decode
//! (reduced and full) against the pure-Rust decoders through the same image pipeline.

use deriva_bag_core::features::loader::image::{psnr, ImagePipeline, Layout};
use deriva_bag_core::fixtures::{self, FixtureSpec, ImageFormat};

#[test]
fn libjpeg_turbo_and_the_pure_rust_decoders_agree_on_fixture_photographs() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::generate(&FixtureSpec::photographs(6, (960, 640)), dir.path()).unwrap();
    let jpegs: Vec<_> = bag
        .assets
        .iter()
        .filter(|a| a.format == ImageFormat::Jpeg)
        .map(|a| std::fs::read(bag.path.join(&a.bag_path)).unwrap())
        .collect();
    assert_eq!(jpegs.len(), 4); // retina_003.png and retina_004.png stay PNG
                                // 960 × 640 resized to 224 decodes at 1/2 (480 × 320); to 96 at 1/4 (240 × 160).
    for (size, stored) in [(224, (480, 320)), (96, (240, 160))] {
        let turbo = ImagePipeline::new().resize(size).center_crop(size, size);
        let pure_rust = turbo.clone().libjpeg_turbo(false);
        for (i, bytes) in jpegs.iter().enumerate() {
            let reduced = turbo.decode(bytes).unwrap();
            assert_eq!(reduced.dimensions(), (960, 640));
            assert_eq!(
                reduced.pixels().dimensions(),
                stored,
                "image {i}, resize {size}"
            );
            let (shape, fast) = turbo.to_values(&reduced, Layout::Chw);
            assert_eq!(shape, [3, size as usize, size as usize]);
            let pairs = [
                ("pure-Rust reduced decode", pure_rust.decode(bytes).unwrap()),
                (
                    "pure-Rust full decode + resize",
                    pure_rust
                        .clone()
                        .reduced_jpeg_decode(false)
                        .decode(bytes)
                        .unwrap(),
                ),
            ];
            for (what, reference) in pairs {
                let (reference_shape, expected) = pure_rust.to_values(&reference, Layout::Chw);
                assert_eq!(reference_shape, shape);
                let db = psnr(&fast, &expected, 1.0);
                eprintln!("image {i}, resize {size}: libjpeg-turbo vs {what}: {db:.1} dB");
                assert!(
                    db >= 40.0,
                    "image {i}, resize {size}, vs {what}: {db:.1} dB"
                );
            }
        }
    }
    // Full-size decodes agree too.
    let full = ImagePipeline::new();
    for bytes in &jpegs {
        let (_, a) = full.to_values(&full.decode(bytes).unwrap(), Layout::Chw);
        let rust = full.clone().libjpeg_turbo(false);
        let (_, b) = rust.to_values(&rust.decode(bytes).unwrap(), Layout::Chw);
        let db = psnr(&a, &b, 1.0);
        assert!(db >= 40.0, "full decode: {db:.1} dB");
    }
}
