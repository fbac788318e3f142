//! Adds an rpath to libtorch for this crate's own tests, examples and binaries, so they run
//! without `LD_LIBRARY_PATH` (torch-sys only passes the rpath to its own C++ compile).
//! A build script cannot give dependent crates' binaries an rpath (`rustc-link-arg` applies
//! to this package's own targets only): they set it in their `.cargo/config.toml`, as
//! `.ci/ml-libs.sh` prints and README ("libtorch and TensorFlow for your own crate") shows,
//! or run with `LD_LIBRARY_PATH` (`. .ci/ml-libs.sh` exports it).
//!
//! Compiles `csrc/exclusive.cpp` (one function reading libtorch's reference counts, which
//! tch does not expose) against the same libtorch headers torch-sys uses.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/exclusive.cpp");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report DEP_TCH_LIBTORCH_LIB; source .ci/ml-libs.sh first");
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    let lib = PathBuf::from(lib);
    let root = lib
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| lib.clone());
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .file("csrc/exclusive.cpp")
        .include(root.join("include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .extra_warnings(false)
        .flag_if_supported("-w")
        .compile("deriva_torch_exclusive");
}
