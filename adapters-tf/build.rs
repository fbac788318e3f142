//! Adds an rpath to the TensorFlow C library for this crate's own tests and examples, so
//! they run without `LD_LIBRARY_PATH`. A build script cannot give dependent crates' binaries
//! an rpath (`rustc-link-arg` applies to this package's own targets only): they set it in
//! their `.cargo/config.toml`, as `.ci/ml-libs.sh` prints and README ("libtorch and
//! TensorFlow for your own crate") shows, or run with `LD_LIBRARY_PATH`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let libdir = Command::new("pkg-config")
        .args(["--variable=libdir", "tensorflow"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(dir) = libdir.filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
