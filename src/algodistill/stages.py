"""Resumable stages: a finished stage leaves a record, and a re-run skips it while the record still holds.

A stage's record `stages/<stage>.json` holds its config, the sha256 of its inputs and of its outputs,
and its wall time. A re-run skips a stage whose record matches its config and inputs and whose outputs
still verify; otherwise the stage runs again (a corrupt output is first moved aside as
`<name>.corrupt`, never deleted), and so does every later stage whose inputs it changed. Stages are
deterministic, so a redone stage usually writes the same bytes and what follows it still verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from algodistill import __version__
from algodistill.atomic import atomic_write_json, sha256_file
from algodistill.errors import UserError
from algodistill.jsonio import read_json


def record_path(run_dir: Path, stage: str) -> Path:
    """Where a run directory keeps the record of a stage."""
    return run_dir / "stages" / f"{stage}.json"


def recorded_seconds(run_dir: Path, stage: str) -> float:
    """Wall seconds of a finished stage, from its record (UserError if the record is missing or unreadable)."""
    return float(read_json(record_path(run_dir, stage), "re-run to redo the stage")["seconds"])


class Stages:
    """Runs stages in order in a run directory, skipping those whose record still matches."""

    def __init__(self, run_dir: Path, quiet: bool, label: str = "") -> None:
        self.run_dir = run_dir
        self.quiet = quiet
        self.label = label  # printed before stage names, e.g. "seed-1/"
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}  # seconds of every stage (a skipped one's: when it ran)
        self.ran: dict[str, bool] = {}  # True: ran in this process, False: skipped

    def _record_path(self, stage: str) -> Path:
        return record_path(self.run_dir, stage)

    def _hashes(self, paths: list[Path]) -> dict[str, str | None]:
        return {str(p.relative_to(self.run_dir)): sha256_file(p) if p.is_file() else None for p in paths}

    def _record(self, stage: str) -> dict[str, Any] | None:
        """The stage's record, or None if there is none or it cannot be read (the stage then runs again)."""
        path = self._record_path(stage)
        if not path.is_file():
            return None
        try:
            return read_json(path, "")
        except UserError:
            self._say("[redo]", stage, f": its record {path.name} is unreadable")
            return None

    def run(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: list[Path],
        outputs: list[Path] | Callable[[], list[Path]],
        work: Callable[[], object],
    ) -> None:
        """Run `work` unless the stage's record matches `config`, the inputs' hashes and its outputs
        (a list, or a function listing them once the work is done)."""
        key = {"config": config, "inputs": self._hashes(inputs)}
        record = self._record(stage)
        if record is not None and {k: record.get(k) for k in key} == key and isinstance(record.get("outputs"), dict):
            current = self._hashes([self.run_dir / p for p in record["outputs"]])
            if current == record["outputs"]:
                self.timings[stage], self.ran[stage] = record["seconds"], False
                self._say("[skip]", stage, f": outputs verified ({record['seconds']:.0f} s when it ran)")
                return
            for rel, digest in record["outputs"].items():  # keep nothing corrupt where a stage reads it
                p = self.run_dir / rel
                if p.is_file() and current[rel] != digest:
                    p.replace(p.with_name(p.name + ".corrupt"))
                    self._say("[redo]", stage, f": {rel} does not match its record; moved to {p.name}.corrupt")
        self._say("[run]", stage)
        t0 = time.perf_counter()
        work()
        seconds = time.perf_counter() - t0
        self.timings[stage], self.ran[stage] = seconds, True
        atomic_write_json(
            self._record_path(stage),
            {
                **key,
                "outputs": self._hashes(outputs() if callable(outputs) else outputs),
                "seconds": seconds,
                "package_version": __version__,
            },
        )

    def _say(self, tag: str, stage: str, detail: str = "") -> None:
        if not self.quiet:
            print(f"{tag} {self.label}{stage}{detail}", flush=True)
