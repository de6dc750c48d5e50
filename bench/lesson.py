#!/usr/bin/python3
"""The Python lesson mpdemo reimplements, as the lesson does it: square N random numbers with a loop
and with a multiprocessing.Pool created inside the timed function, each timed by a @benchmark
decorator that prints the lesson's box.

    /usr/bin/python3 bench/lesson.py                   # N = 10^6, the boxes on stdout
    /usr/bin/python3 bench/lesson.py 10000000 --repeat 3
    /usr/bin/python3 bench/lesson.py --json            # boxes on stderr, the times as JSON on stdout

Needs Debian's python3-numpy and python3-psutil (cmake/install-deps.sh installs them).
bench/compare_python.sh runs this beside `mpdemo_bench_ratios --lesson` and divides the times.
"""
import argparse
import functools
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time

import numpy as np
import psutil

# Every timed call's seconds, by function name, in run order (for --json).
TIMES = {}
BOX_STREAM = sys.stdout


def benchmark(func):
    """The lesson's decorator: time one call and print its box."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        elapsed = time.perf_counter() - start
        title = f"{'-' * 50} {func.__name__} {'-' * 50}"
        print(title, file=BOX_STREAM)
        print(f"func: {func.__name__} executed in {elapsed:.5f}s.", file=BOX_STREAM)
        print("-" * len(title), file=BOX_STREAM)
        TIMES.setdefault(func.__name__, []).append(elapsed)
        return result

    return wrapper


def squared(x):
    return x**2


@benchmark
def array_squared_sp(array):
    """The loop: a list comprehension over the numpy array."""
    return [x**2 for x in array]


@benchmark
def array_squared_mp(array):
    """The pool, created (and torn down) inside the timed function; every element is pickled both ways."""
    with mp.Pool(psutil.cpu_count(logical=False)) as pool:
        return pool.map(squared, array)


def main():
    global BOX_STREAM
    parser = argparse.ArgumentParser(description="The Python lesson: a loop vs multiprocessing.Pool.")
    parser.add_argument("size", nargs="?", type=int, default=1_000_000, help="elements (default 10^6)")
    parser.add_argument("--repeat", type=int, default=1, help="calls of each function (default 1, as the lesson)")
    parser.add_argument("--json", action="store_true", help="times as JSON on stdout; the boxes go to stderr")
    args = parser.parse_args()
    if args.size < 1 or args.repeat < 1:
        parser.error("size and --repeat must be at least 1")
    if args.json:
        BOX_STREAM = sys.stderr

    array = np.random.uniform(0, 1, size=args.size)
    verified = True
    for _ in range(args.repeat):
        sp = array_squared_sp(array)
        mp_result = array_squared_mp(array)
        verified = verified and sp == mp_result

    if args.json:
        json.dump(
            {
                "size": args.size,
                "repeat": args.repeat,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "physical_cores": psutil.cpu_count(logical=False),
                "start_method": mp.get_start_method(),
                "verified": verified,
                "times": {
                    name: {
                        "seconds": values,
                        "median": statistics.median(values),
                        "min": min(values),
                        "max": max(values),
                    }
                    for name, values in TIMES.items()
                },
            },
            sys.stdout,
            indent=2,
        )
        print()


if __name__ == "__main__":
    main()
