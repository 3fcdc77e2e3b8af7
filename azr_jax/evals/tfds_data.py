"""TFDS datasets (array_record) built from local JSONL files, read with grain.

One builder, ``azr_jsonl``, with one config per prepared file: the config's name is the
dataset name and its ``kind`` picks the fields (see ``records.KINDS``). Writing uses the
TFDS writer (no TensorFlow needed for array_record); reading uses
``tfds.builder_from_directory(...).as_data_source`` and ``grain.MapDataset`` —
never ``tfds.load``, which needs TensorFlow.

Layout: ``<data_dir>/azr_jsonl/<name>/<version>/`` holds the array_record shards and the
dataset info; that directory is what ``load_records`` and ``azr-jax eval --data`` accept.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

from azr_jax.errors import UserError
from azr_jax.evals import records as records_lib

VERSION = "1.0.0"
SPLIT = "test"
_KIND_PREFIX = "azr-jax kind="


def _tfds():
    import tensorflow_datasets as tfds  # heavy: import only when used

    return tfds


_BUILDER_CLS = None


def _builder_cls():
    """The builder class, created on first use (registering it needs tfds imported)."""
    global _BUILDER_CLS
    if _BUILDER_CLS is not None:
        return _BUILDER_CLS
    tfds = _tfds()

    @dataclasses.dataclass(eq=False)
    class JsonlConfig(tfds.core.BuilderConfig):
        kind: str = "cruxeval"
        input_path: str = ""

    class AzrJsonl(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Local JSONL evaluation data of one kind, stored as array_record."""

        VERSION = tfds.core.Version(VERSION)
        BUILDER_CONFIG_CLS = JsonlConfig

        # No checksums/metadata files live next to this code; returning None also avoids
        # tfds's `importlib_resources` probe, a backport that is not installed.
        @tfds.core.utils.classproperty
        @classmethod
        def code_path(cls):
            return None

        def _info(self):
            kind = records_lib.get_kind(self.builder_config.kind)
            features = tfds.features.FeaturesDict(
                {f: tfds.features.Text() for f in kind.fields})
            return tfds.core.DatasetInfo(
                builder=self, features=features,
                # Keep file order: results files and slices (--limit) follow the file.
                disable_shuffling=True,
                description=f"{_KIND_PREFIX}{kind.name}")

        def _split_generators(self, dl_manager):
            return {SPLIT: self._generate_examples()}

        def _generate_examples(self):
            path, kind = self.builder_config.input_path, self.builder_config.kind
            for index, record in enumerate(records_lib.iter_jsonl_records(path, kind)):
                yield index, record

    AzrJsonl.name = "azr_jsonl"
    _BUILDER_CLS = (AzrJsonl, JsonlConfig)
    return _BUILDER_CLS


def _valid_name(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    if not safe or not safe[0].isalpha():
        raise UserError(f"dataset name {name!r} must start with a letter")
    return safe


def prepare(kind: str, input_path: str, data_dir: str, name: str | None = None) -> str:
    """Build the array_record dataset for ``input_path`` and return its directory.

    ``name`` defaults to the file's stem. The whole file is validated first, so a bad
    line raises ``UserError`` before anything is written. An existing dataset of the same
    name is rebuilt.
    """
    n_records = len(records_lib.read_jsonl_records(input_path, kind))
    stem = os.path.basename(input_path).split(".")[0]
    name = _valid_name(name or stem)
    builder_cls, config_cls = _builder_cls()
    tfds = _tfds()
    config = config_cls(name=name, kind=kind, input_path=os.path.abspath(input_path),
                        version=VERSION)
    builder = builder_cls(config=config, data_dir=os.path.abspath(data_dir),
                          file_format="array_record")
    download_config = tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)
    if os.path.isdir(builder.data_dir):
        # Prepared before, maybe from other contents: rebuild from this file.
        download_config = tfds.download.DownloadConfig(
            download_mode=tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    builder.download_and_prepare(download_config=download_config)
    written = builder.info.splits[SPLIT].num_examples
    if written != n_records:  # should not happen; a silent loss would skew every score
        raise RuntimeError(f"wrote {written} records for {n_records} lines of {input_path}")
    return str(builder.data_dir)


def is_prepared_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset_info.json"))


def _kind_of(builder) -> str:
    description = builder.info.description or ""
    if not description.startswith(_KIND_PREFIX):
        raise UserError(f"{builder.data_dir}: not a dataset prepared by `azr-jax data prepare`")
    return description[len(_KIND_PREFIX):]


def data_source(path: str):
    """(kind, random-access data source) of a prepared dataset directory."""
    if not is_prepared_dir(path):
        raise UserError(f"{path}: not a prepared dataset directory (no dataset_info.json); "
                        "build one with `azr-jax data prepare`")
    builder = _tfds().builder_from_directory(path)
    return _kind_of(builder), builder.as_data_source(split=SPLIT)


def _decode(example: dict) -> records_lib.Record:
    return {k: v.decode("utf-8") if isinstance(v, bytes) else str(v) for k, v in example.items()}


def iter_prepared(path: str) -> tuple[str, Iterator[records_lib.Record]]:
    """(kind, records in file order) of a prepared dataset, read through grain."""
    import grain

    kind, source = data_source(path)
    fields = records_lib.get_kind(kind).fields
    dataset = grain.MapDataset.source(source).map(_decode)
    return kind, ({f: rec[f] for f in fields} for rec in dataset)


def load_records(path: str, kind: str | None = None) -> tuple[str, list[records_lib.Record]]:
    """(kind, records) from a prepared TFDS directory or a JSONL file.

    For a directory the kind comes from the dataset; if ``kind`` is given too they must
    agree. A JSONL file needs ``kind``.
    """
    if os.path.isdir(path):
        found, records = iter_prepared(path)
        if kind is not None and kind != found:
            raise UserError(f"{path}: holds {found} data, expected {kind}")
        return found, list(records)
    if kind is None:
        raise UserError(f"{path}: a JSONL file needs its kind (one of {', '.join(records_lib.KINDS)})")
    return kind, records_lib.read_jsonl_records(path, kind)
