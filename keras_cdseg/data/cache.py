"""A disk cache of prepared volumes, read back memory-mapped so datasets larger than memory stream.

```
cache_dir/
  manifest.json                     {"format", "config", "labels", "cases": {case_id: entry}}
  <case_id>.<key>.image.npy         float32 [num_slices, H, W] (prepare_volume output)
  <case_id>.<key>.label.npy         uint8   [num_slices, H, W] (absent for unlabelled cases)
  <case_id>.<key>.entry.json        the case's manifest entry; written last, so its presence marks a
                                    complete case and an interrupted build resumes where it stopped
```
`key` hashes the source paths, sizes and modification times and the `DataConfig`, so editing a scan or
changing the preprocessing rebuilds exactly the cases concerned. Every file is written atomically.
"""

import collections
import dataclasses
import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from keras_cdseg import config as config_lib
from keras_cdseg.data import nifti_io
from keras_cdseg.data.preprocessing import VolumeGeometry, prepare_volume
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_path, write_json_atomic

MANIFEST = "manifest.json"
# Bump when prepare_volume's output changes for the same inputs, so old caches are rebuilt.
CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One cached case.

    Args:
        case_id: str.
        modality: str or None. Carried for stratified splits and reports only.
        num_slices: int.
        image_file: str. File name (inside the cache directory) of the prepared image.
        label_file: str or None. File name of the prepared label map, None for unlabelled cases.
        foreground_pixels: tuple[int, ...] or None. Non-background pixels per prepared slice.
        geometry: VolumeGeometry. To map predictions back to the source grid.
        key: str. Hash of the sources and the DataConfig.
        source_image: str. Absolute path of the source image.
    """

    case_id: str
    modality: str | None
    num_slices: int
    image_file: str
    label_file: str | None
    foreground_pixels: tuple | None
    geometry: VolumeGeometry
    key: str
    source_image: str

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["geometry"] = self.geometry.to_dict()
        values["foreground_pixels"] = None if self.foreground_pixels is None else list(self.foreground_pixels)
        return values

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values["geometry"] = VolumeGeometry.from_dict(values["geometry"])
        if values["foreground_pixels"] is not None:
            values["foreground_pixels"] = tuple(int(n) for n in values["foreground_pixels"])
        return cls(**values)


class VolumeCache:
    """Read access to a cache directory written by `build_cache`.

    Arrays are opened with `np.load(mmap_mode="r")`: reading a slice touches only that slice's pages. At
    most `max_open` cases stay mapped at once (least recently used are closed) so thousands of cases do not
    exhaust file handles. Safe to share between threads (tf.data map workers).

    Args:
        cache_dir: str or Path.
        max_open: int. Mapped cases kept open. Defaults to 64.

    Raises:
        InputError: no manifest, or a manifest of another cache format.
    """

    def __init__(self, cache_dir, max_open=64):
        self.cache_dir = Path(cache_dir)
        manifest = config_lib.load_json(self.cache_dir / MANIFEST)
        if manifest.get("format") != CACHE_FORMAT:
            raise InputError(self.cache_dir, f"cache format {manifest.get('format')} is not {CACHE_FORMAT}; rebuild it")
        self.config = config_lib.from_dict(config_lib.DataConfig, manifest["config"], source=self.cache_dir / MANIFEST)
        self.labels = dict(manifest["labels"])
        self.entries = {case_id: CacheEntry.from_dict(e) for case_id, e in manifest["cases"].items()}
        self._max_open = max_open
        self._open = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def case_ids(self):
        return tuple(self.entries)

    @property
    def num_classes(self):
        return max(self.labels.values()) + 1

    def __len__(self):
        return len(self.entries)

    def __contains__(self, case_id):
        return case_id in self.entries

    def entry(self, case_id):
        try:
            return self.entries[case_id]
        except KeyError:
            raise InputError(self.cache_dir, f"case '{case_id}' is not in the cache") from None

    def image(self, case_id):
        """Prepared image `[num_slices, H, W]` float32, memory-mapped read-only."""
        return self._arrays(case_id)[0]

    def label(self, case_id):
        """Prepared label map `[num_slices, H, W]` uint8, memory-mapped read-only; None if unlabelled."""
        return self._arrays(case_id)[1]

    def close(self):
        """Unmaps every open case (they are re-mapped on the next read)."""
        with self._lock:
            self._open.clear()

    def _arrays(self, case_id):
        with self._lock:
            arrays = self._open.get(case_id)
            if arrays is not None:
                self._open.move_to_end(case_id)
                return arrays
        entry = self.entry(case_id)
        image = np.load(self.cache_dir / entry.image_file, mmap_mode="r")
        label = np.load(self.cache_dir / entry.label_file, mmap_mode="r") if entry.label_file else None
        with self._lock:
            self._open[case_id] = (image, label)
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return image, label


def case_key(case, config):
    """Hash of a case's sources (path, size, mtime) and the DataConfig: equal keys mean a valid cached copy."""
    sources = []
    for path in (case.image, case.label):
        if path is None:
            sources.append(None)
            continue
        stat = Path(path).stat()
        sources.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    payload = {"format": CACHE_FORMAT, "preparation": preparation_settings(config), "sources": sources}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def preparation_settings(config):
    """The DataConfig fields that change prepared arrays (`context` does not: it is applied when reading)."""
    values = config_lib.to_dict(config)
    values.pop("context", None)
    return values


def build_cache(index, config, cache_dir, cases=None, progress=True):
    """Prepares cases with `prepare_volume` and stores them in `cache_dir`, reusing up-to-date ones.

    Args:
        index: `DatasetIndex` (keras_cdseg.data.dataset).
        config: `DataConfig`.
        cache_dir: str or Path. Created if missing.
        cases: iterable of `Case` or case ids, or None for all training cases of `index`.
        progress: bool. One status line per case on stderr. Defaults to True.

    Returns:
        The `VolumeCache`. Its manifest lists the cases built now plus earlier ones of the same config whose
        sources are unchanged; entries of another config are dropped (their files stay until rebuilt).

    Raises:
        InputError: an unknown case id, or a case whose files are unreadable or inconsistent (the message
            names the file). Cases finished before the error stay cached and are reused on the next run.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    selected = _select_cases(index, cases)
    entries = _reusable_entries(cache_dir, index, config)
    allowed_values = sorted(index.labels.values())
    started = time.perf_counter()
    for number, case in enumerate(selected, start=1):
        key = case_key(case, config)
        entry_path = cache_dir / f"{case.case_id}.{key}.entry.json"
        status = "cached"
        if entry_path.is_file():
            entries[case.case_id] = CacheEntry.from_dict(json.loads(entry_path.read_text()))
        else:
            entries[case.case_id] = _build_case(case, config, cache_dir, key, allowed_values)
            write_json_atomic(entry_path, entries[case.case_id].to_dict())
            _remove_stale(cache_dir, case.case_id, key)
            status = "prepared"
        if progress:
            elapsed = time.perf_counter() - started
            print(f"cache {number}/{len(selected)} {case.case_id}: {status} ({elapsed:.1f} s)", file=sys.stderr)
    write_json_atomic(
        cache_dir / MANIFEST,
        {
            "format": CACHE_FORMAT,
            "config": config_lib.to_dict(config),
            "labels": dict(index.labels),
            "cases": {case_id: entry.to_dict() for case_id, entry in entries.items()},
        },
    )
    return VolumeCache(cache_dir)


def _select_cases(index, cases):
    if cases is None:
        return tuple(index.training)
    by_id = {case.case_id: case for case in index.training + index.test}
    selected = []
    for case in cases:
        if isinstance(case, str):
            if case not in by_id:
                raise InputError(index.root, f"case '{case}' is not in the dataset")
            case = by_id[case]
        selected.append(case)
    return tuple(selected)


def _reusable_entries(cache_dir, index, config):
    # Keep earlier entries of the same config whose sources are unchanged (their key still matches).
    path = cache_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    try:
        same_settings = preparation_settings(config_lib.from_dict(config_lib.DataConfig, manifest["config"])) == (
            preparation_settings(config)
        )
    except (KeyError, TypeError, InputError):
        same_settings = False
    if manifest.get("format") != CACHE_FORMAT or not same_settings:
        return {}
    by_id = {case.case_id: case for case in index.training + index.test}
    kept = {}
    for case_id, values in manifest.get("cases", {}).items():
        case = by_id.get(case_id)
        try:
            if case is not None and values.get("key") == case_key(case, config):
                kept[case_id] = CacheEntry.from_dict(values)
        except (OSError, KeyError, TypeError):
            continue
    return kept


def _build_case(case, config, cache_dir, key, allowed_values):
    image = nifti_io.load_image(case.image)
    label = nifti_io.load_label(case.label, allowed_values=allowed_values) if case.label is not None else None
    prepared = prepare_volume(image, config, label)
    stem = f"{case.case_id}.{key}"
    _save_npy(cache_dir / f"{stem}.image.npy", prepared.image)
    foreground = None
    if prepared.label is not None:
        _save_npy(cache_dir / f"{stem}.label.npy", prepared.label)
        foreground = tuple(int(n) for n in np.count_nonzero(prepared.label.reshape(len(prepared.label), -1), axis=1))
    return CacheEntry(
        case_id=case.case_id,
        modality=case.modality,
        num_slices=int(prepared.image.shape[0]),
        image_file=f"{stem}.image.npy",
        label_file=f"{stem}.label.npy" if prepared.label is not None else None,
        foreground_pixels=foreground,
        geometry=prepared.geometry,
        key=key,
        source_image=str(Path(case.image).resolve()),
    )


def _save_npy(path, array):
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))


def _remove_stale(cache_dir, case_id, key):
    # Files of the same case under an older key (edited source or another config) are dead weight.
    for suffix in (".image.npy", ".label.npy", ".entry.json"):
        for path in cache_dir.glob(f"{_glob_escape(case_id)}.*{suffix}"):
            # "<case_id>.<key><suffix>" exactly: another case whose id starts with "<case_id>." has more dots.
            same_case = path.name[len(case_id) + 1 :].count(".") == suffix.count(".")
            if same_case and path.name != f"{case_id}.{key}{suffix}":
                path.unlink(missing_ok=True)


def _glob_escape(text):
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
