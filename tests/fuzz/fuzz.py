"""The long fuzz mode: mutants of the seeds for N minutes, with counts per outcome class and the
first input of every bug signature.

    PYTHONPATH=src python tests/fuzz/fuzz.py --minutes 5 [--start 0] [--cli-every 10] [--seeds DIR]

Mutant numbers run upwards from --start over every seed (mutant k of a seed is always the same
input), so a reported (seed, number) is reproduced with `harness.mutant(seed, number)`.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, required=True, help="how long to run")
    ap.add_argument("--start", type=int, default=0, help="first mutant number")
    ap.add_argument("--cli-every", type=int, default=10, help="run the CLI on every N-th input (default 10)")
    ap.add_argument("--seeds", type=Path, help="seed directory (made there when empty; default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcuforge-fuzz-") as tmp:
        seeds = harness.make_seeds(args.seeds or Path(tmp) / "seeds")
        deadline = time.monotonic() + args.minutes * 60
        counts, bugs, last = Counter(), {}, [args.start]
        worker = harness.Worker()

        def numbers():
            for n in itertools.count(args.start):
                if time.monotonic() > deadline:
                    return
                last[0] = n
                yield n

        def report(seed, number, outcome, detail):
            if outcome in harness.BUGS and detail not in bugs:
                bugs[detail] = (seed.name, number)
                print(f"{seed.name} #{number}: {detail}", flush=True)
        try:
            counts, _ = harness.campaign(seeds, numbers(), Path(tmp), args.cli_every, worker, report)
        finally:
            worker.close()
    total = sum(counts.values())
    print(f"\n{total} inputs (mutants {args.start}..{last[0]} of {len(seeds)} seeds, the CLI on every "
          f"{args.cli_every}th) in {args.minutes:g} min")
    for outcome in harness.OUTCOMES:
        print(f"  {outcome:9} {counts[outcome]}")
    print(f"{len(bugs)} distinct bug signatures")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
