//! Payload and tag manifest lines: the parser must never panic, and any path it accepts
//! must stay inside the bag.
#![no_main]

use std::path::Path;

use deriva_bag_core::bagit::manifest::parse_manifest;
use deriva_bag_core::bagit::paths::safe_join;
use deriva_bag_core::bagit::Algorithm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = Path::new("manifest-md5.txt");
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        if let Ok(entries) = parse_manifest(data, algorithm, source) {
            let root = Path::new("/bag");
            for entry in entries {
                assert_eq!(entry.digest.len(), algorithm.hex_len());
                let joined = safe_join(root, &entry.path, source).expect("accepted path re-checks");
                assert!(joined.starts_with(root));
            }
        }
    }
});
