//! Adds an rpath to libtorch for this crate's own tests, examples and binaries, so they run
//! without `LD_LIBRARY_PATH` (torch-sys only passes the rpath to its own C++ compile).
//! Dependent crates still need `LD_LIBRARY_PATH` (`.ci/ml-libs.sh` exports it).
fn main() {
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
}
