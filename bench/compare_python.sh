#!/usr/bin/env bash
# The lesson's own comparison, Python against mpdemo, on the same machine in one go:
#   Python: bench/lesson.py           a list comprehension, and mp.Pool(psutil.cpu_count(logical=False))
#                                     + pool.map(squared, array) with the pool created inside the timed function
#   mpdemo: mpdemo_bench_ratios --lesson   square_sequentially, and square_with_fresh_processes (pool forked,
#                                     used and stopped inside the timed region, as in the lesson), its workers
#                                     forked by this process and, a second row, by a fork server
#   Python's other pools, created inside the timed function too (bench/lesson.py --contenders):
#                                     concurrent.futures.ProcessPoolExecutor and joblib, each with its
#                                     defaults and batched as Pool.map batches; numpy's vectorised square; and
#                                     the lesson's pool forked by Python's own fork server (start method
#                                     "forkserver"), beside mpdemo's pool forked by its fork server
# and prints how many times faster mpdemo is for each. Issue target: the lesson's pool at least 500x faster.
#
# Usage: bench/compare_python.sh [BUILD_DIR] [N]     (defaults: build/release, 1000000)
# Environment: PYTHON (default /usr/bin/python3, Debian's, with python3-numpy, python3-psutil, python3-joblib),
#              PYTHON_REPEAT (default 3), MPDEMO_REPEAT (default 7),
#              SKIP_SLOW_DEFAULTS=1 leaves out ProcessPoolExecutor with its defaults (chunksize 1: minutes at 10^6).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${1:-$here/../build/release}"
size="${2:-1000000}"
python="${PYTHON:-/usr/bin/python3}"
python_repeat="${PYTHON_REPEAT:-3}"
mpdemo_repeat="${MPDEMO_REPEAT:-7}"
bench="$build_dir/bench/mpdemo_bench_ratios"

if [[ ! -x "$bench" ]]; then
  echo "compare_python: $bench not found; build it first:" >&2
  echo "  cmake --preset release && cmake --build --preset release --target mpdemo_bench_ratios" >&2
  exit 2
fi
if ! "$python" -c 'import numpy, psutil, joblib' 2>/dev/null; then
  echo "compare_python: $python lacks numpy, psutil or joblib" \
       "(Debian: apt-get install python3-numpy python3-psutil python3-joblib)" >&2
  exit 2
fi
slow_defaults=()
[[ "${SKIP_SLOW_DEFAULTS:-0}" == 1 ]] && slow_defaults=(--skip-slow-defaults)
if [[ ! "$size" =~ ^[1-9][0-9]*$ ]]; then
  echo "compare_python: N must be a positive integer, got '$size'" >&2
  exit 2
fi

# One after the other, never at once: each side wants both cores.
echo "compare_python: Python lesson, N = $size, $python_repeat run(s)..." >&2
python_json="$("$python" "$here/lesson.py" "$size" --repeat "$python_repeat" --json --contenders "${slow_defaults[@]}")"
echo "compare_python: mpdemo lesson methods, N = $size, $mpdemo_repeat run(s)..." >&2
mpdemo_json="$("$bench" --lesson --size "$size" --repeat "$mpdemo_repeat" --format json)"

"$python" - "$python_json" "$mpdemo_json" <<'EOF'
import json
import sys

py = json.loads(sys.argv[1])
cpp = json.loads(sys.argv[2])
cpp_times = {t["key"]: t for t in cpp["timings"]}
target = 500.0

rows = [
    ("loop", "array_squared_sp", "fresh-seq", None),
    ("pool created inside the timed region", "array_squared_mp", "fresh-proc", target),
    ("  the same, copying in and out", "array_squared_mp", "fresh-proc-copy", None),
    # mpdemo's pool with its workers forked by a small server made before the arrays (Python's
    # "forkserver" start method; Python's own pool keeps its default, fork).
    ("  the same, forked by a fork server", "array_squared_mp", "fresh-proc-server", target),
    # Both sides' workers forked by a fork server started beforehand (Python: mp.get_context("forkserver")).
    ("  both sides forked by a fork server", "array_squared_mp_forkserver", "fresh-proc-server", None),
    # What else a Python user picks, against mpdemo's lesson pool (each created inside the timed region).
    ("ProcessPoolExecutor, defaults", "array_squared_ppe", "fresh-proc", None),
    ("ProcessPoolExecutor, chunksize as Pool", "array_squared_ppe_chunked", "fresh-proc", None),
    ("joblib, defaults", "array_squared_joblib", "fresh-proc", None),
    ("joblib, batch_size as Pool", "array_squared_joblib_batched", "fresh-proc", None),
    # One core against one core: numpy's vectorised square against mpdemo's loop.
    ("numpy's square (vs mpdemo's loop)", "array_squared_np", "fresh-seq", None),
]
rows = [row for row in rows if row[1] in py["times"] and row[2] in cpp_times]
print(f"The lesson at N = {py['size']:,}: Python {py['python']} (numpy {py['numpy']}, "
      f"mp.Pool({py['physical_cores']}), start method {py['start_method']}) vs mpdemo ({cpp['compiler']} "
      f"{cpp['cxx_flags']}, {cpp['workers']} workers)")
print(f"medians: Python over {py['repeat']} run(s), mpdemo over {cpp['repeat']}; "
      "'worst case' divides Python's fastest run by mpdemo's slowest")
print()
print(f"{'Python':<38} {'Python s':>10} {'mpdemo s':>10} {'faster by':>11} {'worst case':>11}  target")
met_all = True
for label, function, key, goal in rows:
    p = py["times"][function]
    c = cpp_times[key]
    ratio = p["median"] / c["median"]
    worst = p["min"] / c["max"]
    verdict = "-"
    if goal is not None:
        met = ratio >= goal
        met_all = met_all and met
        verdict = f">= {goal:.0f}x: {'met' if met else 'NOT met'}"
    print(f"{label:<38} {p['median']:>10.5f} {c['median']:>10.6f} {ratio:>10.1f}x {worst:>10.1f}x  {verdict}")
print("(mpdemo s: the lesson's pool for every pool row, mpdemo's loop for the loop and numpy rows; "
      "'faster by' below 1 means Python was faster)")
print()
verified = py["verified"] and all(cpp_times[k]["verified"] for _, _, k, _ in rows)
print(f"results: every Python method equals its loop (numpy: x * x), mpdemo's equal its loop: {'yes' if verified else 'NO'}")
def phases_line(label, key):
    phases = cpp_times.get(key, {}).get("phases_median", {})
    if phases:
        print(f"{label}, median phases (ms): " +
              ", ".join(f"{name} {phases[name] * 1e3:.3f}" for name in ("start", "move_in", "compute", "collect", "stop")))

def floor_line(label, team_key, pool_key, tail):
    # A floor measured beside its pool in the same run: as many children forked, heard from and reaped
    # in the same way, with no work. No pool forked that way can beat Python by more.
    team = cpp_times.get(team_key)
    if team is None or pool_key not in cpp_times or "array_squared_mp" not in py["times"]:
        return
    phases = team.get("phases_median", {})
    print(f"{label}: {team['median'] * 1e3:.3f} ms (start {phases.get('start', 0) * 1e3:.3f}, "
          f"stop {phases.get('stop', 0) * 1e3:.3f}); the pool took {cpp_times[pool_key]['median'] / team['median']:.2f}x it, "
          f"and Python's pool over it is {py['times']['array_squared_mp']['median'] / team['median']:.0f}x{tail}")

phases_line("mpdemo fresh pool", "fresh-proc")
phases_line("mpdemo fresh pool, forked by a fork server", "fresh-proc-server")
floor_line(f"floor: {cpp['workers']} bare children forked, heard from and reaped by the same process in the same run",
           "bare-team", "fresh-proc", ", the most any pool forked by this process could reach here")
floor_line("floor with a fork server: the same children forked by a server made before the arrays",
           "server-team", "fresh-proc-server", "")
sys.exit(0 if verified else 1)
EOF
