"""One whole-type reconciliation in a fresh process, measured: `python -m benchmarks.recon_probe`.

Prints one JSON line: the job summary, seconds, entities/s, and memory — the peak RSS above the
RSS just before the run (sampled every 20 ms) and, with --tracemalloc, the Python heap peak.
A fresh process per size keeps earlier phases out of the memory figures.
"""

import argparse
import json
import threading
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.02):
            self.peak = max(self.peak, rss_bytes())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from catalog.models import BookableItem
    from ops.documents import relational_body
    from ops.models import Job, JobType
    from ops.reconciliation import BATCH_SIZE, reconciliation_run

    first = BookableItem.objects.order_by("pk").values_list("pk", flat=True).first()
    relational_body("item", first)  # warm: imports, serializer classes, DB connections
    job = Job.objects.create(type=JobType.RECONCILIATION, params={"entityType": "item"})
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    before = rss_bytes()
    sampler = PeakRSS()
    sampler.start()
    started = time.perf_counter()
    result = reconciliation_run(job=job, entity_type="item", batch_size=args.batch_size or BATCH_SIZE)
    seconds = time.perf_counter() - started
    sampler.stopping.set()
    sampler.join()
    out = {"summary": result["summary"], "seconds": seconds,
           "per_second": result["summary"]["checked"] / seconds,
           "rss_before_mb": before / 2**20, "rss_peak_delta_mb": (sampler.peak - before) / 2**20,
           "batch_size": args.batch_size or BATCH_SIZE}
    if args.tracemalloc:
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
