"""A stand-in worker for ProcessManager tests: python dummy.py MODE.

MODE: sleep (cooperative), ignore-term (survives SIGTERM), grandchild (spawns a
grandchild that ignores SIGTERM), chatty (prints numbered lines), exit3, exit4 (a second, then
the exit of a worker that lost its database and stopped itself), hog MB (takes MB of memory, each
page written, then sleeps).
"""

import signal
import subprocess
import sys
import time

mode = sys.argv[1]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "grandchild":
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
        ]
    )
    print(f"grandchild {child.pid}", flush=True)
if mode == "chatty":
    for i in range(1000):
        print(f"line {i}", flush=True)
if mode == "hog":
    taken = b"\1" * (int(sys.argv[2]) * 2**20)  # written, so resident
if mode == "exit3":
    sys.exit(3)
if mode == "exit4":
    time.sleep(1.0)  # long enough for the test to commit a segment first
    sys.exit(4)
print("ready", flush=True)
time.sleep(600)
