"""Weight files checked against the manifest before anything loads them (no torch, no network).

- What is expected of ``WEIGHTS_DIR`` (``expected_rows``): the published manifest
  (``manifest.PUBLISHED``), or an operator's (``STEREOCRAFTER_WEIGHTS_MANIFEST``), with what the lock
  (``WEIGHTS_DIR/weights.lock.json``) recorded filling only what the manifest does not know: a
  commit resolved at the first download, a digest trusted on first use. A value the manifest knows is
  never replaced by the lock's. A directory of tiny random test weights (the marker at its root) is
  held to its own record instead, which ``testing.weights`` writes with it; its outputs say
  ``tiny_weights``.
- Each file's size is compared always, its SHA-256 where one is known. The digest is computed once and
  kept in a small stamp (``WEIGHTS_DIR/.stamps/<repo>/<path>.json``: size, mtime, inode, digest),
  so a restart does not read 8 GB again; a file changed since has another mtime and is hashed again.
  Where the directory is read-only (model data placed by SageMaker) no stamp is kept and each start
  hashes.
- ``verify_models``: per model, ``ok``, ``missing`` (which files) or ``corrupt`` (which file, the
  expected and the actual size or digest). A digest the manifest lacks is recorded in the lock by
  the first check that sees the file, and required from then on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from stereocrafter.weights.manifest import (
    ALTERNATIVES,
    PUBLISHED,
    TINY_WEIGHTS_MARKER,
    WeightFile,
    files_of,
    from_json,
    to_json,
)

logger = logging.getLogger("bentoml.stereocrafter.weights.integrity")

LOCK_NAME = "weights.lock.json"
STAMPS = ".stamps"
_BLOCK = 8 << 20


def is_tiny(weights_dir: str | os.PathLike[str]) -> bool:
    """True for the random test weights of ``stereocrafter.testing.weights`` (marked at the root and in
    each repo folder, so the label survives a download or a mirror of the repos)."""
    root = Path(weights_dir)
    return (root / TINY_WEIGHTS_MARKER).is_file() or any(root.glob(f"*/*/{TINY_WEIGHTS_MARKER}"))


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def digest(root: Path, key: str) -> str:
    """The SHA-256 of ``root/key``, from its stamp when the file has not changed since."""
    path = root / key
    stat = path.stat()
    stamp = root / STAMPS / f"{key}.json"
    seen = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    try:
        kept = json.loads(stamp.read_text())
        if {k: kept.get(k) for k in seen} == seen and isinstance(kept.get("sha256"), str):
            return str(kept["sha256"])
    except (OSError, ValueError):
        pass
    value = sha256_of(path)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(stamp, json.dumps({**seen, "sha256": value}))
    except OSError:
        logger.debug("no stamp kept for %s (read-only weights directory)", key)
    return value


def read_manifest(path: str | os.PathLike[str] | None) -> tuple[WeightFile, ...] | None:
    """An operator's manifest (``STEREOCRAFTER_WEIGHTS_MANIFEST``), or None (the published one)."""
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"STEREOCRAFTER_WEIGHTS_MANIFEST: cannot read {path} ({err.strerror})") from None
    return from_json(text, str(path))


def read_lock(weights_dir: str | os.PathLike[str]) -> tuple[WeightFile, ...]:
    """What the lock recorded (empty without one); ``ValueError`` when it is not a manifest."""
    path = Path(weights_dir) / LOCK_NAME
    if not path.is_file():
        return ()
    return from_json(path.read_text(), str(path))


def update_lock(weights_dir: str | os.PathLike[str], rows: Iterable[WeightFile]) -> bool:
    """``rows`` merged into the lock (by repo and path, the new row winning); False when it cannot be
    written (a read-only directory: logged)."""
    root = Path(weights_dir)
    merged = {row.key: row for row in read_lock(root)}
    new = {row.key: row for row in rows}
    if all(merged.get(key) == row for key, row in new.items()):
        return True
    merged.update(new)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_atomic(root / LOCK_NAME, to_json(sorted(merged.values(), key=lambda r: r.key)))
    except OSError as err:
        logger.warning("cannot write %s (%s): recorded digests are not kept", root / LOCK_NAME, err)
        return False
    return True


def _write_atomic(path: Path, text: str) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def expected_rows(
    weights_dir: str | os.PathLike[str],
    models: Iterable[str],
    manifest: Sequence[WeightFile] | None = None,
) -> list[WeightFile]:
    """The files ``models`` need under ``weights_dir`` with what is known of each (see the module)."""
    root = Path(weights_dir)
    lock = {row.key: row for row in read_lock(root)}
    if manifest is None:
        manifest = _tiny_record(lock) if is_tiny(root) else PUBLISHED
    rows = []
    for row in files_of(manifest, models):
        locked = lock.get(row.key)
        if locked is not None and row.revision in (None, locked.revision):
            row = replace(
                row,
                revision=row.revision or locked.revision,
                size=row.size if row.size is not None else locked.size,
                sha256=row.sha256 or locked.sha256,
            )
        rows.append(row)
    return rows


def _tiny_record(lock: dict[str, WeightFile]) -> tuple[WeightFile, ...]:
    """What tiny test weights are held to: their own record, and for a model it lacks, the published
    files with nothing known of them (recorded at first use)."""
    recorded = {row.model for row in lock.values()}
    return (
        *lock.values(),
        *(replace(row, size=None, sha256=None) for row in PUBLISHED if row.model not in recorded),
    )


@dataclass
class ModelCheck:
    """One model's files against the manifest: ``state`` ok, missing or corrupt."""

    model: str
    state: str = "ok"
    missing: list[str] = field(default_factory=list)  # "<repo>/<path>" of each absent file
    problems: list[str] = field(default_factory=list)  # one sentence per file that differs
    recorded: list[str] = field(default_factory=list)  # digests trusted on first use just now
    # every file the model loads from, with its SHA-256 (when digests were checked): what a record
    # names (``jobs.provenance``)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        if self.missing:
            return "missing " + ", ".join(self.missing)
        return "verified"


def check_file(root: Path, row: WeightFile, digests: bool = True) -> tuple[str, str, WeightFile]:
    """(``ok`` | ``missing`` | ``corrupt`` | ``new``, a sentence, the row with what was measured):
    ``new`` is a file whose digest the manifest and the lock lack. ``digests`` False: the size alone
    (``doctor`` at start-up; the load checks the digests)."""
    path = root / row.key
    if not path.is_file():
        return "missing", f"{row.key} is missing", row
    size = path.stat().st_size
    if not digests:
        if row.size is not None and size != row.size:
            return "corrupt", f"{row.key} is not the published file: {size} bytes, expected {row.size}", row
        return "ok", f"{row.key}: {size} bytes", row
    if row.size is not None and size != row.size:
        actual = sha256_of(path)
        return (
            "corrupt",
            (
                f"{row.key} is not the published file: {size} bytes, expected {row.size}; sha256 {actual}, "
                f"expected {row.sha256 or 'not known'}"
            ),
            row,
        )
    actual = digest(root, row.key)
    if row.sha256 is not None and actual != row.sha256:
        return "corrupt", f"{row.key} is not the published file: sha256 {actual}, expected {row.sha256}", row
    if row.sha256 is None:
        return (
            "new",
            f"{row.key}: sha256 {actual} recorded (first use)",
            replace(row, size=size, sha256=actual),
        )
    return "ok", f"{row.key} verified", row


def _alternative(root: Path, model: str, digests: bool = True) -> bool:
    """Every file of the model's alternative (``manifest.ALTERNATIVES``) there, with its digest."""
    rows = ALTERNATIVES.get(model, ())
    return bool(rows) and all(check_file(root, row, digests)[0] == "ok" for row in rows)


def verify_models(
    weights_dir: str | os.PathLike[str],
    models: Iterable[str],
    manifest: Sequence[WeightFile] | None = None,
    *,
    digests: bool = True,
    record: bool = True,
) -> dict[str, ModelCheck]:
    """Every file of ``models`` checked (see the module); digests seen for the first time are written
    to the lock (``record``), only for models whose every file is present and no file differs.
    ``digests`` False: sizes only (a quick look that reads no file)."""
    root = Path(weights_dir)
    names = list(dict.fromkeys(models))
    checks = {name: ModelCheck(name) for name in names}
    new_rows: dict[str, list[WeightFile]] = {name: [] for name in names}
    for row in expected_rows(root, names, manifest):
        state, sentence, measured = check_file(root, row, digests)
        check = checks[row.model]
        if state in ("ok", "new") and measured.sha256 is not None and digests:
            check.files[row.key] = measured.sha256
        if state == "missing":
            check.missing.append(row.key)
        elif state == "corrupt":
            check.problems.append(sentence)
        elif state == "new":
            new_rows[row.model].append(measured)
    recorded = []
    for name, check in checks.items():
        if check.problems:
            check.state = "corrupt"
            logger.error("weights of %s refused: %s", name, check.message)
        elif check.missing and _alternative(root, name, digests):
            check.missing = []
            check.problems = []
            check.files = {row.key: row.sha256 for row in ALTERNATIVES[name] if row.sha256 and digests}
            logger.info(
                "weights of %s: the alternative %s verified", name, [r.key for r in ALTERNATIVES[name]]
            )
        elif check.missing:
            check.state = "missing"
        else:
            check.recorded = [row.key for row in new_rows[name]]
            recorded += new_rows[name]
    if recorded and record:
        update_lock(root, recorded)
        for row in recorded:
            logger.info("weights: %s has no published digest; recorded sha256 %s (trusted on first use) "
                        "in %s", row.key, row.sha256, LOCK_NAME)  # fmt: skip
    return checks
