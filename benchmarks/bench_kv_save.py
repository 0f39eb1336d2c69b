"""Benchmark (a script): copying a saved KV state out of llama.cpp, the old way vs the scheduler's way.

The scheduler saves an evicted conversation's KV state to RAM. It used to let llama.cpp write into a ctypes array
and then take `bytes(array[:n])`, which builds one Python int per byte under the GIL; it now gives llama.cpp a
ctypes view of a `bytearray` to write into (serving/backends/batched.py `_save`). `memmove` stands for
`llama_state_seq_get_data` here (both write n bytes into the buffer they are given). Fresh buffers each repeat;
time and Python-allocated peak (tracemalloc) per way.

    python benchmarks/bench_kv_save.py --mib 8
"""

import argparse
import ctypes
import statistics
import time
import tracemalloc


def through_python_ints(src, n: int) -> bytes:
    buf = (ctypes.c_uint8 * n)()
    ctypes.memmove(buf, src, n)
    return bytes(buf[:n])


def into_bytearray(src, n: int) -> bytearray:
    state = bytearray(n)
    ctypes.memmove((ctypes.c_uint8 * n).from_buffer(state), src, n)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = int(args.mib * 2**20)
    src = (ctypes.c_uint8 * n)()
    for way in (through_python_ints, into_bytearray):
        times, peaks = [], []
        for _ in range(args.repeats):
            tracemalloc.start()
            start = time.perf_counter()
            way(src, n)
            times.append(1000 * (time.perf_counter() - start))
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        print(f"{way.__name__}: {args.mib:g} MiB in {min(times):.1f} / {statistics.median(times):.1f} / "
              f"{max(times):.1f} ms (min/median/max), peak {max(peaks):.0f} MiB")


if __name__ == "__main__":
    main()
