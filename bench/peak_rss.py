"""Runs a command and reports the peak resident memory of its whole process tree (the
command plus any worker processes it forks), sampled every 50 ms from /proc, with the
samples of every second (to see whether memory stays flat).
Usage: python3 bench/peak_rss.py OUT.json CMD ARGS...   (the command's output passes through)"""
import json
import os
import subprocess
import sys
import time


def tree_rss_kb(root):
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


out, command = sys.argv[1], sys.argv[2:]
process = subprocess.Popen(command)
peak, start, timeline = 0, time.time(), []
while process.poll() is None:
    rss = tree_rss_kb(process.pid)
    peak = max(peak, rss)
    elapsed = time.time() - start
    if not timeline or elapsed - timeline[-1][0] >= 1.0:
        timeline.append((round(elapsed, 1), round(rss / 1024, 1)))
    time.sleep(0.05)
with open(out, "w") as f:
    json.dump({"peak_rss_mb": peak / 1024, "exit": process.returncode, "rss_mb_each_second": timeline}, f)
sys.exit(process.returncode)
