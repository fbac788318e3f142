//! fetch.txt lines: the parser must never panic, and any PATH it accepts (after
//! percent-decoding) must stay inside the bag.
#![no_main]

use std::path::Path;

use deriva_bag_core::bagit::fetch::parse_fetch;
use deriva_bag_core::bagit::paths::safe_join;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = Path::new("fetch.txt");
    if let Ok(entries) = parse_fetch(data, source) {
        let root = Path::new("/bag");
        for entry in entries {
            assert!(!entry.url.is_empty());
            let joined = safe_join(root, &entry.path, source).expect("accepted path re-checks");
            assert!(joined.starts_with(root));
        }
    }
});
