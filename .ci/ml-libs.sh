# Source from .ci/run (bash, root):  . .ci/ml-libs.sh   — safe under `set -euo pipefail`.
# Provides libtorch for tch 0.26.0 and the TF C API for tensorflow 0.21.0, both from PyPI wheels.
TORCH_VERSION=2.13.0     # tch 0.26.0 / torch-sys 0.26.0 expect exactly this
CUDART_VERSION=13.0.96   # = cuda-toolkit[cudart]==13.0.3, pinned by torch 2.13.0
CUPTI_VERSION=13.0.85    # = cuda-toolkit[cupti]==13.0.3, pinned by torch 2.13.0
TF_VERSION=2.13.0        # tensorflow-sys 0.24.0 targets TF 2.13.0 (2.21.0 also works)
export LIBTORCH="${LIBTORCH:-/opt/libtorch-$TORCH_VERSION}"
export TF_PREFIX="${TF_PREFIX:-/opt/libtensorflow-$TF_VERSION}"

if [ ! -f "$LIBTORCH/build-version" ]; then
  ( set -euo pipefail
    dl="$(mktemp -d)"; trap 'rm -rf "$dl"' EXIT
    # torch wheel = container for libtorch; pin the tag so the host python version doesn't matter
    pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 -d "$dl" "torch==$TORCH_VERSION"
    # py3-none wheels (pip won't widen --platform to older manylinux tags, so use host tags)
    pip download -q --no-deps -d "$dl" \
        "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
    # headers + CPU libs only; libtorch_cuda.so (470 MB) and the python bits are skipped
    unzip -q "$dl"/torch-"$TORCH_VERSION"-*.whl 'torch/include/*' torch/lib/libtorch_cpu.so \
        torch/lib/libtorch.so torch/lib/libc10.so torch/lib/libgomp.so.1 -d "$dl/x"
    # libtorch_cpu.so (CUDA wheel) has DT_NEEDED libcudart.so.13 + libcupti.so.13; they load without a GPU
    unzip -q -j "$dl"/nvidia_cuda_runtime-*.whl nvidia/cu13/lib/libcudart.so.13 -d "$dl/x/torch/lib"
    unzip -q -j "$dl"/nvidia_cuda_cupti-*.whl nvidia/cu13/lib/libcupti.so.13 -d "$dl/x/torch/lib"
    echo "$TORCH_VERSION" > "$dl/x/torch/build-version"   # torch-sys then checks the version
    mkdir -p "$(dirname "$LIBTORCH")"; rm -rf "$LIBTORCH"; mv "$dl/x/torch" "$LIBTORCH"
  ) || { echo "libtorch provisioning failed" >&2; return 1 2>/dev/null || exit 1; }
fi

if [ ! -f "$TF_PREFIX/lib/pkgconfig/tensorflow.pc" ]; then
  ( set -euo pipefail
    command -v pkg-config >/dev/null || apt-get install -y -q pkg-config
    dl="$(mktemp -d)"; trap 'rm -rf "$dl"' EXIT
    pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 -d "$dl" "tensorflow-cpu==$TF_VERSION"
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
    mkdir -p "$(dirname "$TF_PREFIX")"; rm -rf "$TF_PREFIX"; mv "$dl/x" "$TF_PREFIX"
  ) || { echo "libtensorflow provisioning failed" >&2; return 1 2>/dev/null || exit 1; }
fi

# tensorflow-sys: pkg-config hit => no download attempt.  Runtime: both libs via LD_LIBRARY_PATH.
export PKG_CONFIG_PATH="$TF_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$LIBTORCH/lib:$TF_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"   # silence TF's INFO lines
