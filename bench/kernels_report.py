#!/usr/bin/python3
"""Turns kernels_bench --benchmark_format=csv output (stdin) into a markdown table (stdout):
one row per kernel and dim, one column per SIMD level, GB/s of vector data; the memory read
baseline on top.

  build/bench/kernels_bench --benchmark_format=csv | bench/kernels_report.py > bench/results/kernels.md
"""
import csv
import sys

rows = {}
levels = []
baseline = None
lines = [l for l in sys.stdin if l.startswith('"') or l.startswith("name")]
for r in csv.DictReader(lines):
    name = r["name"].strip('"')
    gbps = float(r["bytes_per_second"]) / 1e9 if r.get("bytes_per_second") else None
    if name.startswith("BM_MemoryRead"):
        baseline = gbps
        continue
    kernel, level, dim = name.split("/")[:3]
    if level not in levels:
        levels.append(level)
    rows.setdefault((kernel[3:], int(dim)), {})[level] = gbps

print("# Kernel throughput (GB/s of vector data, one thread)\n")
print("Float kernels score one query against a block of rows held in L2 (bytes = rows x dim x 4);")
print("uint8/int8/fp16 kernels score one pair held in L1 (bytes = the stored vector).")
print("Command: `build/bench/kernels_bench --benchmark_format=csv | bench/kernels_report.py`\n")
if baseline:
    print("Memory read baseline (one thread, 256 MiB buffer): %.1f GB/s\n" % baseline)
print("| kernel | dim | " + " | ".join(levels) + " |")
print("|---|---|" + "---|" * len(levels))
for (kernel, dim), by_level in sorted(rows.items()):
    cells = ["%.1f" % by_level[l] if by_level.get(l) else "-" for l in levels]
    print("| %s | %d | %s |" % (kernel, dim, " | ".join(cells)))
