#!/usr/bin/env bash
# Installs, from Debian 12's own packages, whatever mpdemo needs that this machine lacks.
# Idempotent: a machine that has everything gets no apt call at all.
#
#   bash cmake/install-deps.sh               what building and running mpdemo needs
#   bash cmake/install-deps.sh --for-tests   and what only the test suite needs: a browser, for the
#                                            tests that open `mpdemo report`'s page (they skip without it)
set -euo pipefail

for_tests=false
for argument in "$@"; do
  case "$argument" in
    --for-tests) for_tests=true ;;
    *) echo "install-deps: unknown option '$argument' (the only one is --for-tests)" >&2; exit 2 ;;
  esac
done

packages=(
  g++ cmake ninja-build pkgconf          # toolchain: C++20 with GCC 12, CMake >= 3.25
  libboost-dev                           # Boost.Interprocess: the shared arena
  libcereal-dev                          # serializing values that are not trivially copyable (header-only)
  libcli11-dev                           # command line
  libfmt-dev                             # formatting of tables and messages
  nlohmann-json3-dev                     # --format json
  libhwloc-dev                           # physical cores, sockets (what psutil calls logical=False)
  libgtest-dev libgmock-dev              # unit tests under ctest
  libbenchmark-dev                       # bench/: micro-benchmarks
  gnuplot-nox                            # sweep --plot
  libtbb-dev                             # bench/: std::execution::par_unseq (GCC's parallel STL runs on TBB)
  python3-numpy python3-psutil           # bench/lesson.py: the Python lesson, measured beside us
  python3-joblib                         # bench/lesson.py: joblib beside multiprocessing and concurrent.futures
  openmpi-bin libopenmpi-dev             # run --backend mpi under mpirun, mpdemo::MpiPool (optional at build time)
)
if $for_tests; then
  packages+=(chromium fonts-dejavu-core)  # headless, to load and screenshot the report page
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root, or install sudo" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
