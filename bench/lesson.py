#!/usr/bin/python3
"""The Python lesson mpdemo reimplements, as the lesson does it: square N random numbers with a loop
and with a multiprocessing.Pool created inside the timed function, each timed by a @benchmark
decorator that prints the lesson's box. With --contenders, also what else a Python user picks for the
same job, each pool created inside the timed function too, with its default settings and with its
best (tasks batched as Pool.map batches them): concurrent.futures.ProcessPoolExecutor and joblib, and
numpy's own vectorised square, the best one core does.

    /usr/bin/python3 bench/lesson.py                   # N = 10^6, the boxes on stdout
    /usr/bin/python3 bench/lesson.py 10000000 --repeat 3
    /usr/bin/python3 bench/lesson.py --json            # boxes on stderr, the times as JSON on stdout
    /usr/bin/python3 bench/lesson.py --contenders      # and forkserver, ProcessPoolExecutor, joblib, numpy

ProcessPoolExecutor.map's default chunksize is 1: one task, one pickle, one pipe message per element.
At 10^6 that takes minutes, so defaults that slow run once whatever --repeat says (--skip-slow-defaults
leaves them out).

Needs Debian's python3-numpy, python3-psutil and python3-joblib (cmake/install-deps.sh installs them).
bench/compare_python.sh runs this beside `mpdemo_bench_ratios --lesson` and divides the times.
"""
import argparse
import concurrent.futures as cf
import functools
import json
import math
import multiprocessing as mp
import platform
import statistics
import sys
import time

import joblib
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


# Python's fork server (start method "forkserver", Python 3.14's default on Linux): a small process,
# started before the timed call as mpdemo's is (main() starts it), forks the pool's workers.
FORKSERVER = mp.get_context("forkserver")


@benchmark
def array_squared_mp_forkserver(array):
    """The lesson's pool with its workers forked by Python's fork server, started beforehand."""
    with FORKSERVER.Pool(workers()) as pool:
        return pool.map(squared, array)


def workers():
    """The lesson's choice: one worker per physical core."""
    return psutil.cpu_count(logical=False)


def pool_map_chunksize(n, count):
    """Pool.map's default chunksize, ceil(n / (4 * workers)): what 'best settings' batch by."""
    return max(1, math.ceil(n / (4 * count)))


@benchmark
def array_squared_ppe(array):
    """concurrent.futures.ProcessPoolExecutor with its defaults: map's chunksize is 1."""
    with cf.ProcessPoolExecutor(workers()) as executor:
        return list(executor.map(squared, array))


@benchmark
def array_squared_ppe_chunked(array):
    """The same executor, its map batched as Pool.map batches: chunksize ceil(n / (4 * workers))."""
    with cf.ProcessPoolExecutor(workers()) as executor:
        return list(executor.map(squared, array, chunksize=pool_map_chunksize(len(array), workers())))


@benchmark
def array_squared_joblib(array):
    """joblib.Parallel with its defaults (the loky backend, batch_size='auto')."""
    return joblib.Parallel(n_jobs=workers())(joblib.delayed(squared)(x) for x in array)


@benchmark
def array_squared_joblib_batched(array):
    """joblib.Parallel with batch_size ceil(n / (4 * workers)), as Pool.map batches."""
    batch = pool_map_chunksize(len(array), workers())
    return joblib.Parallel(n_jobs=workers(), batch_size=batch)(joblib.delayed(squared)(x) for x in array)


@benchmark
def array_squared_np(array):
    """numpy's vectorised square on one core: no pool, no interpreter loop."""
    return array**2


# (function, whether its defaults make it slow enough to run once)
CONTENDERS = [
    (array_squared_mp_forkserver, False),
    (array_squared_ppe, True),
    (array_squared_ppe_chunked, False),
    (array_squared_joblib, False),
    (array_squared_joblib_batched, False),
    (array_squared_np, False),
]


def main():
    global BOX_STREAM
    parser = argparse.ArgumentParser(description="The Python lesson: a loop vs multiprocessing.Pool.")
    parser.add_argument("size", nargs="?", type=int, default=1_000_000, help="elements (default 10^6)")
    parser.add_argument("--repeat", type=int, default=1, help="calls of each function (default 1, as the lesson)")
    parser.add_argument("--json", action="store_true", help="times as JSON on stdout; the boxes go to stderr")
    parser.add_argument("--contenders", action="store_true",
                        help="also the pool forked by a fork server, ProcessPoolExecutor and joblib (defaults and "
                        "batched) and numpy's square")
    parser.add_argument("--skip-slow-defaults", action="store_true",
                        help="with --contenders: leave out ProcessPoolExecutor with its defaults (minutes at 10^6)")
    args = parser.parse_args()
    if args.size < 1 or args.repeat < 1:
        parser.error("size and --repeat must be at least 1")
    if args.json:
        BOX_STREAM = sys.stderr

    array = np.random.uniform(0, 1, size=args.size)
    verified = True
    reference = None
    for _ in range(args.repeat):
        sp = array_squared_sp(array)
        mp_result = array_squared_mp(array)
        verified = verified and sp == mp_result
        reference = sp
    if args.contenders:
        # numpy squares as x * x, correctly rounded; the loop's x**2 is libm's pow(x, 2), which is 1 ulp
        # off for about one element in a thousand: numpy is checked against x * x, one element at a time.
        products = [x * x for x in array]
        # Outside the timed calls, as mpdemo_bench_ratios starts its fork server before the arrays.
        from multiprocessing import forkserver

        forkserver.ensure_running()
        for function, slow in CONTENDERS:
            if slow and args.skip_slow_defaults:
                continue
            for _ in range(1 if slow else args.repeat):
                result = function(array)
                same = list(result) == (products if function is array_squared_np else reference)
                if not same:
                    print(f"lesson: {function.__name__} differs from the loop", file=sys.stderr)
                verified = verified and same

    if args.json:
        json.dump(
            {
                "size": args.size,
                "repeat": args.repeat,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "joblib": joblib.__version__,
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
