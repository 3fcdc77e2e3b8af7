"""One process of the two-process SIGTERM/lock test (tests/test_checkpoint_fallback.py).

    python tests/preemption_worker.py PORT PROCESS_ID WORKDIR
"""

import os
import signal
import sys
import time


def main(port, process_id, workdir):
    from azr_jax.errors import UserError
    from azr_jax.pipeline import preemption, workdir_lock
    from azr_jax.sharding import initialize_distributed

    assert initialize_distributed(f"localhost:{port}", 2, process_id)
    with workdir_lock.hold(workdir) as lock:
        assert (lock is not None) == (process_id == 0)  # only process 0 locks
        try:  # a second run on the same workdir: every one of its processes is refused
            with workdir_lock.hold(workdir):
                pass
        except UserError as e:
            print("SECOND_RUN_REFUSED", e, flush=True)
        with preemption.guard() as guard:
            for step in range(1, 6):
                if process_id == 1 and step == 2:
                    os.kill(os.getpid(), signal.SIGTERM)  # only this process is signalled
                time.sleep(0.2)  # the "step"
                if guard.should_stop():
                    print("STOPPED_AFTER", step, flush=True)
                    break


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
