#!/usr/bin/env bash
# The lesson's comparison on one machine, one step further: the fork pool against MPI. For each size,
# one job of `mpirun -np K mpdemo run --backend mpi --mode all`, which interleaves, repeat by repeat,
# the loop, the warm fork pool (forked workers, arrays in shared memory), warm threads and the three
# MPI paths (scatter/gather, a shared window, hybrid) over K ranks; then one table of ratios, each
# measured within one job. Also timed: an empty job (what mpirun costs before any work) and each
# rank's MPI_Init, beside the fork pool's start.
#
# Usage: bench/compare_mpi.sh [BUILD_DIR] [RANKS] [SIZES...]   (defaults: build/release, 2, 1e6 1e7 1e8)
# Environment: REPEAT (default 5), MPIRUN_OPTIONS (extra options for mpirun; as root, export
#              OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 first).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${1:-$here/../build/release}"
ranks="${2:-2}"
shift $(($# > 2 ? 2 : $#))
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(1e6 1e7 1e8)
repeat="${REPEAT:-5}"
mpdemo="$build_dir/mpdemo"

command -v mpirun >/dev/null || { echo "compare_mpi: no mpirun (Debian: apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 2; }
[[ -x "$mpdemo" ]] || { echo "compare_mpi: $mpdemo not found; build it first: cmake --workflow --preset release" >&2; exit 2; }
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "compare_mpi: RANKS must be a positive integer, got '$ranks'" >&2; exit 2; }

# --bind-to none: mpdemo pins each rank itself, as the fork pool pins its workers (one per core).
# shellcheck disable=SC2086
launch=(mpirun -np "$ranks" --oversubscribe --bind-to none ${MPIRUN_OPTIONS:-})

empty_start=$(date +%s%N)
"${launch[@]}" "$mpdemo" --version >/dev/null
empty_nanoseconds=$(($(date +%s%N) - empty_start))

results=()
for size in "${sizes[@]}"; do
  echo "compare_mpi: $ranks ranks, size $size ..." >&2
  results+=("$("${launch[@]}" "$mpdemo" run --backend mpi --size "$size" --repeat "$repeat" --format json)")
done

EMPTY_NANOSECONDS="$empty_nanoseconds" python3 - "${results[@]}" <<'EOF'
import json, os, sys

def ms(seconds):
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} us"

runs = [json.loads(text) for text in sys.argv[1:]]
first = runs[0]
print(f"mpirun of an empty job: {ms(int(os.environ['EMPTY_NANOSECONDS']) / 1e9)}; each job's MPI_Init and pool set-up "
      f"(rank 0): {', '.join(ms(r['mpi']['startup']) for r in runs)}; the fork pool's start: "
      f"{', '.join(ms(r['warm_pool_startup']) for r in runs)}")
print(f"{first['mpi']['ranks']} ranks on {first['mpi']['nodes']} node(s), {first['workers']} fork-pool workers; "
      "median of each job's runs [fastest run]; ratio = warm-proc's median / the mode's (above 1: faster than "
      "the fork pool)")
names = ["seq", "warm-proc", "warm-thread", "mpi-scatter", "mpi-window", "mpi-hybrid"]
print(f"{'size':>12}" + "".join(f"{name:>26}" for name in names))
for run in runs:
    modes = {m["name"]: m for m in run["modes"]}
    if not all(m["verified"] for m in run["modes"]):
        sys.exit(f"compare_mpi: a result at size {run['size']} was wrong")
    fork = modes["warm-proc"]["total"]["median"]
    cells = []
    for name in names:
        total = modes[name]["total"]
        ratio = "" if name in ("seq", "warm-proc") else f" {fork / total['median']:.2f}x"
        cells.append(f"{ms(total['median'])} [{ms(total['min'])}]{ratio}")
    print(f"{run['size']:>12}" + "".join(f"{cell:>26}" for cell in cells))
print("seq pays a new result's first touch; the warm modes write into buffers that exist. mpi-window squares in "
      "place in a shared window (no copy); mpi-scatter and mpi-hybrid copy every element out and back.")
EOF
