//! Tar extraction (a `.tar`, or a `.tar.gz` when the input starts with the gzip magic):
//! whatever the bytes, nothing is written outside the extraction directory, no link is
//! created, the byte cap holds, and a refused archive leaves nothing behind.
#![no_main]

mod sandbox;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sandbox::check(data, "Dataset_1-FUZZ.tar");
});
