//! bagit.txt and bag-info.txt: the tag-file parsers must never panic, and every parsed key
//! is non-empty.
#![no_main]

use std::path::Path;

use deriva_bag_core::bagit::tagfile::{parse_bag_info, parse_bagit_txt, parse_oxum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_bagit_txt(data, Path::new("bagit.txt"));
    if let Ok(info) = parse_bag_info(data, Path::new("bag-info.txt")) {
        for (key, value) in info {
            assert!(!key.is_empty());
            let _ = parse_oxum(&value);
        }
    }
});
