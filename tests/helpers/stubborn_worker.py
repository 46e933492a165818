"""The real worker, plus a child of it that ignores SIGTERM (as some native helpers do).

python stubborn_worker.py JOB_ID
"""

import subprocess
import sys

from ttservice.supervision.worker import main

CHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", CHILD])
    print(f"stubborn child {child.pid}", flush=True)
    sys.exit(main(sys.argv[1:]))
