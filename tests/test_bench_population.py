"""The benchmark's synthetic population is reproducible: the same leads, events and seed give
the same rows byte for byte, however the leads are cut into pieces and whichever process
makes them (``bench/population.py`` runs each lead through the lead's core)."""

from __future__ import annotations

from bench.population import Population, Stats
from nurture.contract.ledger import FactBatch


def _rows(batches: list[FactBatch]) -> list[str]:
    return [batch.model_dump_json() for batch in batches]


def test_the_same_seed_gives_the_same_rows_however_the_leads_are_cut() -> None:
    whole = _rows(list(Population(60, 600).batches()))

    again = Population(60, 600)
    pieces = [*again.batches(0, 25), *again.batches(25, 40), *again.batches(40)]
    chunks = [batch for chunk in Population(60, 600).chunks(7) for batch in chunk]

    assert _rows(pieces) == whole
    assert _rows(chunks) == whole
    assert _rows(list(Population(60, 600, seed=7).batches())) != whole


def test_worker_processes_make_the_same_rows_as_one_process() -> None:
    population = Population(300, 2400)
    alone = [batch for chunk in population.chunks(100) for batch in chunk]

    shared = [batch for chunk in population.chunks(100, workers=2) for batch in chunk]

    assert _rows(shared) == _rows(alone)
    stats = Stats()
    for batch in shared:
        stats.add(batch)
    assert stats.leads == 300 and stats.rows["leadevent"] == 2400
