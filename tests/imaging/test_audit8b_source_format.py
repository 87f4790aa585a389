"""JPEG 2000 pictures are recorded with ``source_format`` ``jpeg2000`` (not ``jpeg``, their family) in
volumes.parquet, the VolumeRecord and the sidecar, as the manifest's ``format`` says; the volume id
(made from ``jpeg2000:<path>``) did not change with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openjpeg
from PIL import Image

from medmm.imaging.raster import convert_raster_file
from medmm.imaging.records import SourceFormat, VolumeRecord
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.schemas import validate_frame
from medmm.tables import read_table


def _grey12() -> np.ndarray:
    a = np.random.default_rng(8).integers(0, 4096, size=(40, 36)).astype(np.uint16)
    a[0, 0], a[0, 1] = 0, 4095
    return a


def test_jpeg2000_is_a_source_format_of_the_volumes_schema() -> None:
    assert SourceFormat("jpeg2000") is SourceFormat.jpeg2000
    enum = VolumeRecord.model_json_schema()["$defs"]["SourceFormat"]["enum"]
    assert "jpeg2000" in enum
    committed = json.loads((Path(__file__).parents[2] / "schemas" / "volumes.schema.json").read_text())
    assert committed["$defs"]["SourceFormat"]["enum"] == enum


def test_convert_raster_file_records_jpeg2000(tmp_path: Path) -> None:
    pic = _grey12()
    (tmp_path / "cr.j2k").write_bytes(bytes(openjpeg.encode(pic, bits_stored=12, codec_format=0)))
    pz = Pseudonymizer(b"k" * 32)
    rec = convert_raster_file("cr.j2k", tmp_path, tmp_path / "run", pz, "jpeg2000")
    assert rec.source_format is SourceFormat.jpeg2000
    assert rec.volume_id == pz.id("jpeg2000:cr.j2k", "volume")  # the id it had when recorded as jpeg
    side = json.loads((tmp_path / "run" / rec.sidecar).read_text())
    assert side["source_format"] == "jpeg2000" and side["picture"]["codec"] == "JPEG 2000"


def test_ingested_jp2_has_source_format_jpeg2000(tmp_path: Path) -> None:
    archive, run = tmp_path / "archive", tmp_path / "run"
    archive.mkdir()
    pic = _grey12()
    (archive / "cxr.jp2").write_bytes(bytes(openjpeg.encode(pic, bits_stored=12, codec_format=1)))
    Image.fromarray((pic >> 4).astype(np.uint8)).save(archive / "cxr8.jpg")
    ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet").set_index("path")
    assert (m["status"] == "ingested").all(), m["reason"].to_dict()
    assert m.loc["cxr.jp2", "format"] == "jpeg2000"
    v = read_table(run / "volumes.parquet")
    validate_frame(v, "volumes")
    by_source = {r.sources[0]: r for r in v.itertuples()}
    jp2, jpg = by_source["cxr.jp2"], by_source["cxr8.jpg"]
    assert (jp2.source_format, jpg.source_format) == ("jpeg2000", "jpeg")
    assert json.loads((run / jp2.sidecar).read_text())["source_format"] == "jpeg2000"
    pz = Pseudonymizer(load_key(tmp_path / "k"))
    assert jp2.volume_id == pz.id("jpeg2000:cxr.jp2", "volume") == m.loc["cxr.jp2", "volume_id"]
