# libtorch 2.13.0 (for tch 0.26.0) and the TensorFlow 2.13.0 C library (for tensorflow 0.21.0),
# taken from the PyPI wheels: what deriva-bag-core's `torch` and `tf` features link against.
# Linux x86_64; no root needed.
#
#   bash /path/to/deriva-bag/.ci/ml-libs.sh          from anywhere: provisions both (once) and
#                                                    prints the .cargo/config.toml lines that let
#                                                    your crate build and its binaries run
#   eval "$(bash /path/to/deriva-bag/.ci/ml-libs.sh --env)"   the same as exports for this shell
#   . .ci/ml-libs.sh                                 sourced (this repo's CI and xtask): provisions
#                                                    and exports LIBTORCH, PKG_CONFIG_PATH,
#                                                    LD_LIBRARY_PATH; safe under `set -euo pipefail`
#
# Where: $LIBTORCH and $TF_PREFIX when set; else /opt/libtorch-2.13.0 and
# /opt/libtensorflow-2.13.0 when already provisioned there; else under
# ${XDG_CACHE_HOME:-$HOME/.cache}/deriva-bag/. About 0.8 GB is downloaded once (progress shown),
# 1 GB stays on disk. A lock beside each prefix lets two first runs wait for each other.
# Needs: python3 (with pip, or with venv to make one), unzip, pkg-config, flock (util-linux).
TORCH_VERSION=2.13.0     # tch 0.26.0 / torch-sys 0.26.0 expect exactly this
CUDART_VERSION=13.0.96   # = cuda-toolkit[cudart]==13.0.3, pinned by torch 2.13.0
CUPTI_VERSION=13.0.85    # = cuda-toolkit[cupti]==13.0.3, pinned by torch 2.13.0
TF_VERSION=2.13.0        # tensorflow-sys 0.24.0 targets TF 2.13.0 (2.21.0 also works)
DERIVA_ML_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/deriva-bag"
DERIVA_ML_SELF="${BASH_SOURCE[0]}"
if [ -z "${LIBTORCH:-}" ]; then
  if [ -f "/opt/libtorch-$TORCH_VERSION/build-version" ]; then LIBTORCH="/opt/libtorch-$TORCH_VERSION"
  else LIBTORCH="$DERIVA_ML_CACHE/libtorch-$TORCH_VERSION"; fi
fi
if [ -z "${TF_PREFIX:-}" ]; then
  if [ -f "/opt/libtensorflow-$TF_VERSION/lib/pkgconfig/tensorflow.pc" ]; then
    TF_PREFIX="/opt/libtensorflow-$TF_VERSION"
  else TF_PREFIX="$DERIVA_ML_CACHE/libtensorflow-$TF_VERSION"; fi
fi
export LIBTORCH TF_PREFIX

_deriva_ml_say() { echo "ml-libs: $*" >&2; }

# The tools provisioning needs; as root on Debian/Ubuntu they are installed (apt-get update
# first), otherwise the message says what to install.
_deriva_ml_tools() {
  local missing=() pkgs=()
  command -v python3 >/dev/null 2>&1 || { missing+=(python3); pkgs+=(python3 python3-venv); }
  command -v unzip >/dev/null 2>&1 || { missing+=(unzip); pkgs+=(unzip); }
  command -v pkg-config >/dev/null 2>&1 || { missing+=(pkg-config); pkgs+=(pkg-config); }
  command -v flock >/dev/null 2>&1 || { missing+=(flock); pkgs+=(util-linux); }
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    _deriva_ml_say "installing ${pkgs[*]} (apt-get)"
    apt-get update -q && apt-get install -y -q "${pkgs[@]}" && return 0
  fi
  _deriva_ml_say "missing: ${missing[*]}. Install them first (Debian/Ubuntu: sudo apt-get install ${pkgs[*]})"
  return 1
}

# pip for `pip download`: python3's own, else a private venv in the cache.
_deriva_ml_pip() {
  if python3 -m pip --version >/dev/null 2>&1; then python3 -m pip "$@"; return; fi
  local venv="$DERIVA_ML_CACHE/pip-venv"
  if [ ! -x "$venv/bin/pip" ]; then
    _deriva_ml_say "python3 has no pip: making one in $venv"
    python3 -m venv "$venv" || {
      _deriva_ml_say "python3 -m venv failed: install venv support (Debian/Ubuntu: sudo apt-get install python3-venv)"
      return 1
    }
  fi
  "$venv/bin/pip" "$@"
}

# Runs step `$2` (`bash this-script --step $2`, a process of its own so that `set -e` holds
# whatever the caller's context) under an exclusive lock on `$1.lock`, unless `$1/$3` already
# exists; checks again once the lock is held, so a second first run waits, then finds it done.
_deriva_ml_once() {
  local prefix="$1" step="$2" marker="$3"
  [ -f "$prefix/$marker" ] && return 0
  mkdir -p "$(dirname "$prefix")" || return 1
  (
    if ! flock -n 9; then
      _deriva_ml_say "another run is provisioning $prefix; waiting for it (lock $prefix.lock)"
      flock 9 || exit 1
    fi
    [ -f "$prefix/$marker" ] && exit 0
    bash "$DERIVA_ML_SELF" --step "$step"
  ) 9>"$prefix.lock"
}

# The two steps run as `bash this-script --step torch|tf` under `set -euo pipefail`.
_deriva_ml_torch() {
    dl="$(mktemp -d "$(dirname "$LIBTORCH")/.libtorch-download.XXXXXX")"
    _deriva_ml_say "libtorch $TORCH_VERSION: downloading the torch wheel (~540 MB, once) into $LIBTORCH"
    # torch wheel = container for libtorch; pin the tag so the host python version doesn't matter
    _deriva_ml_pip download --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 -d "$dl" "torch==$TORCH_VERSION"
    # py3-none wheels (pip won't widen --platform to older manylinux tags, so use host tags)
    _deriva_ml_say "libtorch $TORCH_VERSION: downloading the CUDA runtime stubs it links (~3 MB)"
    _deriva_ml_pip download --no-deps -d "$dl" \
        "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
    _deriva_ml_say "libtorch $TORCH_VERSION: extracting headers and CPU libraries (~490 MB)"
    # headers + CPU libs only; libtorch_cuda.so (470 MB) and the python bits are skipped
    unzip -q "$dl"/torch-"$TORCH_VERSION"-*.whl 'torch/include/*' torch/lib/libtorch_cpu.so \
        torch/lib/libtorch.so torch/lib/libc10.so torch/lib/libgomp.so.1 -d "$dl/x"
    # libtorch_cpu.so (CUDA wheel) has DT_NEEDED libcudart.so.13 + libcupti.so.13; they load without a GPU
    unzip -q -j "$dl"/nvidia_cuda_runtime-*.whl nvidia/cu13/lib/libcudart.so.13 -d "$dl/x/torch/lib"
    unzip -q -j "$dl"/nvidia_cuda_cupti-*.whl nvidia/cu13/lib/libcupti.so.13 -d "$dl/x/torch/lib"
    echo "$TORCH_VERSION" > "$dl/x/torch/build-version"   # torch-sys then checks the version
    rm -rf "$LIBTORCH"; mv "$dl/x/torch" "$LIBTORCH"
    _deriva_ml_say "libtorch $TORCH_VERSION: ready in $LIBTORCH"
}

_deriva_ml_tf() {
    dl="$(mktemp -d "$(dirname "$TF_PREFIX")/.libtensorflow-download.XXXXXX")"
    _deriva_ml_say "TensorFlow $TF_VERSION C library: downloading the tensorflow-cpu wheel (~230 MB, once) into $TF_PREFIX"
    _deriva_ml_pip download --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 -d "$dl" "tensorflow-cpu==$TF_VERSION"
    _deriva_ml_say "TensorFlow $TF_VERSION C library: extracting the two shared libraries (~560 MB)"
    mkdir -p "$dl/x/lib/pkgconfig"
    # libtensorflow_cc.so.2 exports the full C API (TF_NewGraph, TF_NewSession, TF_NewTensor, TFE_*)
    unzip -q -j "$dl"/tensorflow_cpu-*.whl tensorflow/libtensorflow_cc.so.2 \
        tensorflow/libtensorflow_framework.so.2 -d "$dl/x/lib"
    ln -s libtensorflow_cc.so.2 "$dl/x/lib/libtensorflow.so"
    ln -s libtensorflow_framework.so.2 "$dl/x/lib/libtensorflow_framework.so"
    printf '%s\n' "prefix=$TF_PREFIX" 'libdir=${prefix}/lib' '' 'Name: tensorflow' \
        "Description: TensorFlow C API from the tensorflow-cpu $TF_VERSION wheel" \
        "Version: $TF_VERSION" 'Libs: -L${libdir} -ltensorflow -ltensorflow_framework' \
        > "$dl/x/lib/pkgconfig/tensorflow.pc"
    rm -rf "$TF_PREFIX"; mv "$dl/x" "$TF_PREFIX"
    _deriva_ml_say "TensorFlow $TF_VERSION C library: ready in $TF_PREFIX"
}

_deriva_ml_provision() {
  if [ -f "$LIBTORCH/build-version" ] && [ -f "$TF_PREFIX/lib/pkgconfig/tensorflow.pc" ]; then
    return 0
  fi
  case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) _deriva_ml_say "the PyPI wheels used here are for Linux x86_64, not $(uname -sm); set LIBTORCH and PKG_CONFIG_PATH to your own libtorch $TORCH_VERSION and TensorFlow $TF_VERSION C library"
       return 1 ;;
  esac
  _deriva_ml_say "downloading libtorch $TORCH_VERSION and TensorFlow $TF_VERSION from PyPI (about 0.8 GB, once; 1 GB on disk)"
  _deriva_ml_tools || return 1
  _deriva_ml_once "$LIBTORCH" torch build-version \
    || { _deriva_ml_say "libtorch provisioning failed"; return 1; }
  _deriva_ml_once "$TF_PREFIX" tf lib/pkgconfig/tensorflow.pc \
    || { _deriva_ml_say "libtensorflow provisioning failed"; return 1; }
}

if (return 0 2>/dev/null); then
  # Sourced: provision, then export what builds (torch-sys reads LIBTORCH, tensorflow-sys finds
  # the library through pkg-config) and runs (LD_LIBRARY_PATH) need.
  _deriva_ml_provision || return 1
  export PKG_CONFIG_PATH="$TF_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$LIBTORCH/lib:$TF_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"   # silence TF's INFO lines
else
  set -euo pipefail
  case "${1:-}" in
    --step) trap 'rm -rf "${dl:-}"' EXIT; "_deriva_ml_$2"; exit 0 ;;
  esac
  _deriva_ml_provision
  if [ "${1:-}" = "--env" ]; then
    printf 'export %s\n' "LIBTORCH='$LIBTORCH'" \
      "PKG_CONFIG_PATH='$TF_PREFIX/lib/pkgconfig'\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}" \
      "LD_LIBRARY_PATH='$LIBTORCH/lib:$TF_PREFIX/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \
      "TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-2}"
  else
    cat <<EOF
# libtorch $TORCH_VERSION:            $LIBTORCH
# TensorFlow $TF_VERSION C library:   $TF_PREFIX
#
# Put these lines in your crate's .cargo/config.toml (or ~/.cargo/config.toml): [env] lets
# torch-sys and tensorflow-sys find the libraries at build time, and the rpath lets the
# binaries and tests you build find them at run time, in any shell, without LD_LIBRARY_PATH.
[env]
LIBTORCH = "$LIBTORCH"
PKG_CONFIG_PATH = "$TF_PREFIX/lib/pkgconfig"
TF_CPP_MIN_LOG_LEVEL = "2"

[target.x86_64-unknown-linux-gnu]
rustflags = ["-C", "link-arg=-Wl,-rpath,$LIBTORCH/lib", "-C", "link-arg=-Wl,-rpath,$TF_PREFIX/lib"]
EOF
  fi
fi
