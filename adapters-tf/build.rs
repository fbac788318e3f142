//! Adds an rpath to the TensorFlow C library for this crate's own tests and examples, so
//! they run without `LD_LIBRARY_PATH`. Dependent crates still need `LD_LIBRARY_PATH`
//! (`.ci/ml-libs.sh` exports it).
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
