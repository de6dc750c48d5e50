#!/usr/bin/env bash
# The lesson's own comparison, Python against mpdemo, on the same machine in one go:
#   Python: bench/lesson.py           a list comprehension, and mp.Pool(psutil.cpu_count(logical=False))
#                                     + pool.map(squared, array) with the pool created inside the timed function
#   mpdemo: mpdemo_bench_ratios --lesson   square_sequentially, and square_with_fresh_processes (pool forked,
#                                     used and stopped inside the timed region, as in the lesson)
# and prints how many times faster mpdemo is for each. Issue target: the pool at least 500x faster.
#
# Usage: bench/compare_python.sh [BUILD_DIR] [N]     (defaults: build/release, 1000000)
# Environment: PYTHON (default /usr/bin/python3, Debian's, with python3-numpy and python3-psutil),
#              PYTHON_REPEAT (default 3), MPDEMO_REPEAT (default 7).
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
if ! "$python" -c 'import numpy, psutil' 2>/dev/null; then
  echo "compare_python: $python lacks numpy or psutil (Debian: apt-get install python3-numpy python3-psutil)" >&2
  exit 2
fi
if [[ ! "$size" =~ ^[1-9][0-9]*$ ]]; then
  echo "compare_python: N must be a positive integer, got '$size'" >&2
  exit 2
fi

# One after the other, never at once: each side wants both cores.
echo "compare_python: Python lesson, N = $size, $python_repeat run(s)..." >&2
python_json="$("$python" "$here/lesson.py" "$size" --repeat "$python_repeat" --json)"
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
]
print(f"The lesson at N = {py['size']:,}: Python {py['python']} (numpy {py['numpy']}, "
      f"mp.Pool({py['physical_cores']}), start method {py['start_method']}) vs mpdemo ({cpp['compiler']} "
      f"{cpp['cxx_flags']}, {cpp['workers']} workers)")
print(f"medians: Python over {py['repeat']} run(s), mpdemo over {cpp['repeat']}; "
      "'worst case' divides Python's fastest run by mpdemo's slowest")
print()
print(f"{'method':<38} {'Python s':>10} {'mpdemo s':>10} {'faster by':>11} {'worst case':>11}  target")
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
    print(f"{label:<38} {p['median']:>10.5f} {c['median']:>10.6f} {ratio:>10.0f}x {worst:>10.0f}x  {verdict}")
print()
verified = py["verified"] and all(cpp_times[k]["verified"] for _, _, k, _ in rows)
print(f"results: Python's pool equals its loop, mpdemo's equal its loop: {'yes' if verified else 'NO'}")
phases = cpp_times["fresh-proc"].get("phases_median", {})
if phases:
    print("mpdemo fresh pool, median phases (ms): " +
          ", ".join(f"{name} {phases[name] * 1e3:.3f}" for name in ("start", "move_in", "compute", "collect", "stop")))
sys.exit(0 if verified else 1)
EOF
