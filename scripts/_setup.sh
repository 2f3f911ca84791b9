# Shared set-up for scripts/demo and scripts/test (sourced, not run).
# Installs the Debian packages the build needs when run as root; otherwise prints the apt-get line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SPARSENM_PACKAGES=(cmake g++ make libeigen3-dev libopenblas-dev libgtest-dev libbenchmark-dev
                   libomp-dev zlib1g-dev dataset-fashion-mnist python3-numpy fortunes
                   libopenmpi-dev openmpi-bin doxygen)
[ "${SPARSENM_NEED_CLANG:-0}" = 1 ] && SPARSENM_PACKAGES+=(clang-14 libomp-14-dev)

missing_packages() {
  local p
  for p in "${SPARSENM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

ensure_packages() {
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
  else
    echo "missing Debian packages; run as root, or install them with:" >&2
    echo "  sudo apt-get install -y $missing" >&2
    exit 1
  fi
}

JOBS=$(nproc 2>/dev/null || echo 2)

configure_and_build() {  # configure_and_build <build-dir> [cmake args...] ; builds everything
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@"
  cmake --build "$dir" -j "$JOBS"
}
