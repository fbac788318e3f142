//! Adds an rpath to libtorch for this crate's own tests, examples and binaries, so they run
//! without `LD_LIBRARY_PATH` (torch-sys only passes the rpath to its own C++ compile).
//! A build script cannot give dependent crates' binaries an rpath (`rustc-link-arg` applies
//! to this package's own targets only): they set it in their `.cargo/config.toml`, as
//! `.ci/ml-libs.sh` prints and README ("libtorch and TensorFlow for your own crate") shows,
//! or run with `LD_LIBRARY_PATH` (`. .ci/ml-libs.sh` exports it).
fn main() {
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
}
