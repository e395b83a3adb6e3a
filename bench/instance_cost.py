"""What a new workflow instance costs in its module: executing ``workflows/lead.py`` afresh
against executing the counting workflow's module, in the same run.

    .venv/bin/python -m bench.instance_cost [--runs 300]

Temporal's sandbox imports a workflow's module anew for every workflow instance (a new lead, or
a lead coming back into a worker's cache); what the module imports is passed through and loaded
once per process. So the module's own code (its classes, decorators and constants) is paid per
instance, and what lives in passed-through modules (the lead's core, ``nurture/core``) is not.
This executes each module's compiled code in a fresh namespace, its imports already loaded,
and reports medians and the ratio lead / counting. It leaves out the sandbox's own work (the
restricted importer and proxies), the same for both; ``python -m bench.engine_throughput
--sample-stacks`` shows the whole of instance creation in a running worker.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from pathlib import Path

MODULES = {"counting": "bench.counting_workflow", "lead": "workflows.lead"}


def median_ms(module_name: str, runs: int) -> float:
    module = importlib.import_module(module_name)  # loads everything it imports, once
    path = Path(module.__file__ or "")
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    times = []
    for _ in range(runs):
        namespace = {"__name__": f"{module_name}_instance", "__file__": str(path)}
        started = time.perf_counter()
        exec(code, namespace)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="default: %(default)s")
    args = parser.parse_args(argv)
    medians = {kind: median_ms(name, args.runs) for kind, name in MODULES.items()}
    for kind, ms in medians.items():
        print(f"{kind:9} {MODULES[kind]:26} median {ms:.3f} ms per instance")
    print(f"ratio lead / counting: {medians['lead'] / medians['counting']:.1f}")
    return medians


if __name__ == "__main__":
    main()
