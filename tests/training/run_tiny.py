"""Subprocess entry of the training tests: train the tiny router from a records folder.

usage: python run_tiny.py RECORDS WORKDIR STEPS [--resume] [--sleep S] [--shared-workdir]
       [--coordinator HOST:PORT --num-processes N --process-id I]

RECORDS and WORKDIR may be gs:// URLs (the parent passes the emulator's settings in the
environment).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("records")
    p.add_argument("workdir")
    p.add_argument("steps", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--coordinator")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    p.add_argument("--shared-workdir", action="store_true")
    args = p.parse_args()
    import jax

    if args.coordinator:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    import tiny_router

    from routellm_jax.training.train import train

    tiny_router.register()
    config = tiny_router.base_config(args.records, steps=args.steps)

    def slow(step, state):
        # Gives the parent test time to kill the process between checkpoints.
        print(f"STEP {step}", flush=True)
        time.sleep(args.sleep)

    result = train(
        config,
        args.workdir,
        resume=args.resume,
        on_step=slow,
        progress=False,
        shared_workdir=args.shared_workdir,
    )
    print(f"DONE {result.step} {jax.process_index()}/{jax.process_count()}", flush=True)


if __name__ == "__main__":
    main()
