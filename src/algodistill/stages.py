"""Resumable stages: a finished stage leaves a record, and a re-run skips it while the record still holds.

A stage's record `stages/<stage>.json` holds its config, the sha256 of its inputs and of its outputs,
and its wall time: summed over the attempts it took, since a stage stopped by Ctrl-C or SIGTERM leaves
`stages/<stage>.interrupted.json` with the seconds it had spent, and the attempt that finishes it adds
them (a resumed training stage's cost is the whole training's, not its last leg's). A re-run skips a
stage whose record matches its config and inputs and whose outputs still verify; otherwise the stage
runs again (a corrupt output is first moved aside as `<name>.corrupt`, never deleted), and so does every
later stage whose inputs it changed. Stages are deterministic, so a redone stage usually writes the same
bytes and what follows it still verifies.

A study's runs (`algodistill.studies`) differ in a field or two, so most of their stages agree: `reuse`
names other run directories whose finished stages are taken when their config and inputs match, their
outputs hard-linked (copied across file systems) rather than computed again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeGuard

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

    def __init__(self, run_dir: Path, quiet: bool, label: str = "", reuse: Sequence[Path] = ()) -> None:
        self.run_dir = run_dir
        self.quiet = quiet
        self.label = label  # printed before stage names, e.g. "seed-1/"
        self.reuse = [d for d in reuse if d.resolve() != run_dir.resolve()]  # run dirs whose stages may be taken
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}  # seconds of every stage (a skipped one's: when it ran)
        self.ran: dict[str, bool] = {}  # True: ran in this process, False: skipped

    def _record_path(self, stage: str) -> Path:
        return record_path(self.run_dir, stage)

    def _hashes(self, paths: list[Path], root: Path | None = None) -> dict[str, str | None]:
        root = root or self.run_dir
        return {str(p.relative_to(root)): sha256_file(p) if p.is_file() else None for p in paths}

    def _record(self, stage: str, run_dir: Path | None = None) -> dict[str, Any] | None:
        """The stage's record, or None if there is none or it cannot be read (the stage then runs again)."""
        path = record_path(run_dir or self.run_dir, stage)
        if not path.is_file():
            return None
        try:
            return read_json(path, "")
        except UserError:
            self._say("[redo]", stage, f": its record {path.name} is unreadable")
            return None

    def _take(self, stage: str, key: dict[str, Any]) -> bool:
        """Take the stage from a `reuse` directory whose record matches `key` and whose outputs verify there:
        link its outputs here (temp name, then rename) and copy its record. False if none has it."""
        for other in self.reuse:
            record = self._record(stage, other)
            if (
                not _matches(record, key)
                or self._hashes([other / p for p in record["outputs"]], other) != record["outputs"]
            ):
                continue
            for rel in record["outputs"]:
                dst = self.run_dir / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".reuse-tmp")
                tmp.unlink(missing_ok=True)
                try:  # data and checkpoints are linked (written once, replaced atomically); a log is copied, since
                    # a resumed stage appends to it
                    if rel.endswith(".jsonl"):
                        raise OSError
                    os.link(other / rel, tmp)
                except OSError:
                    shutil.copy2(other / rel, tmp)
                tmp.replace(dst)
            atomic_write_json(self._record_path(stage), record)
            self.timings[stage], self.ran[stage] = record["seconds"], False
            self._say("[reuse]", stage, f": from {other}")
            return True
        return False

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
        if _matches(record, key):
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
        if self._take(stage, key):
            return
        self._say("[run]", stage)
        interrupted = record_path(self.run_dir, stage + ".interrupted")
        earlier = self._record(stage + ".interrupted")
        spent = 0.0  # the seconds of earlier attempts at this config and these inputs
        if _written_for(earlier, key) and isinstance(earlier.get("seconds"), int | float):
            spent = float(earlier["seconds"])
        t0 = time.perf_counter()
        try:
            work()
        except KeyboardInterrupt:  # TrainingInterrupted too: the stage resumes from its last saved state
            atomic_write_json(interrupted, {**key, "seconds": spent + time.perf_counter() - t0})
            raise
        seconds = spent + time.perf_counter() - t0
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
        interrupted.unlink(missing_ok=True)

    def _say(self, tag: str, stage: str, detail: str = "") -> None:
        if not self.quiet:
            print(f"{tag} {self.label}{stage}{detail}", flush=True)


def _written_for(record: dict[str, Any] | None, key: dict[str, Any]) -> TypeGuard[dict[str, Any]]:
    """Whether a record (a finished stage's, or an interrupted attempt's) was written for this config and inputs."""
    return record is not None and {k: record.get(k) for k in key} == key


def _matches(record: dict[str, Any] | None, key: dict[str, Any]) -> TypeGuard[dict[str, Any]]:
    """Whether a stage's record was written for this config and these inputs, and lists its outputs."""
    return _written_for(record, key) and isinstance(record.get("outputs"), dict)
