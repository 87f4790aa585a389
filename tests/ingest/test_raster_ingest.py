"""`medmm ingest` takes PNG/JPEG/TIFF exports as one-slice volumes; bad pictures are quarantined, one row
per input, and no picture metadata (text chunks, EXIF, comments) reaches any output."""

from __future__ import annotations

import csv
import gzip
import json
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from medmm.imaging import plot_slice
from medmm.ingest.image_ids import IdColumns, IdTable
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.schemas import validate_frame
from medmm.tables import read_table

SECRET = ("Doe^John", "4711-0815")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _asymmetric() -> np.ndarray:
    """60 rows x 40 columns, dark, with a bright block in the top-left corner and a grey one bottom-right."""
    pic = np.full((60, 40), 10, dtype=np.uint8)
    pic[2:14, 3:12] = 250
    pic[50:58, 30:38] = 120
    return pic


def _archive(root: Path) -> dict[str, tuple[str, str]]:
    """Write the test archive; returns {path: (expected status, reason prefix)}."""
    root.mkdir()
    info = PngInfo()
    info.add_text("Patient", f"{SECRET[0]} {SECRET[1]}")
    info.add_text("Comment", f"{SECRET[0]} {SECRET[1]}", zip=True)
    info.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta><dc:creator>{SECRET[0]}</dc:creator></x:xmpmeta>")
    exif = Image.Exif()
    exif[0x013B] = SECRET[0]  # Artist
    exif[0x010E] = SECRET[1]  # ImageDescription
    Image.fromarray(_asymmetric()).save(root / "marker.png", pnginfo=info, exif=exif)
    wide = (np.arange(30 * 20, dtype=np.uint16).reshape(30, 20) * 100).astype(np.uint16)
    Image.fromarray(wide).save(root / "deep16.png")
    rgb = np.repeat(_asymmetric()[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(
        root / "xray.jpg", quality=95, comment=f"{SECRET[0]} {SECRET[1]}".encode(), exif=exif
    )
    Image.fromarray(_asymmetric()).save(root / "film.tif", tiffinfo={270: SECRET[0], 315: SECRET[1]})
    cut = (root / "marker.png").read_bytes()
    (root / "cut.png").write_bytes(cut[: len(cut) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "page.png").write_text("<html>404 Not Found</html>\n")
    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    bomb = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    (root / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bomb)
    (root / "packed.png.gz").write_bytes(gzip.compress((root / "deep16.png").read_bytes()))
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (0, 90, 180)]
    frames[0].save(root / "cine.png", save_all=True, append_images=frames[1:])
    return {
        "marker.png": ("ingested", ""),
        "deep16.png": ("ingested", ""),
        "xray.jpg": ("ingested", ""),
        "film.tif": ("ingested", ""),
        "cut.png": ("quarantined", "CorruptImageError: cut.png: cannot decode the PNG picture"),
        "empty.png": ("quarantined", "EmptyFileError: empty.png: file is empty"),
        "page.png": (
            "quarantined",
            "UnsupportedFormatError: page.png: named like a PNG image but holds a text",
        ),
        "bomb.png": ("quarantined", "ImageTooLargeError: bomb.png: PNG picture declares more pixels"),
        "packed.png.gz": ("quarantined", "CompressedInputError: packed.png.gz: gzip-compressed PNG picture"),
        "cine.png": ("quarantined", "UnsupportedImageError: cine.png: animated PNG with 3 frames"),
    }


@pytest.fixture()
def ingested(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, dict, str]:
    archive, run = tmp_path / "archive", tmp_path / "run"
    expected = _archive(archive)
    result = ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    out = capsys.readouterr()
    assert result.n_files == len(expected)
    return archive, run, expected, out.out + out.err


def test_every_picture_once_good_ones_as_volumes(ingested: tuple[Path, Path, dict, str]) -> None:
    _, run, expected, _ = ingested
    m = read_table(run / "manifest.parquet")
    validate_frame(m, "manifest")
    assert sorted(m["path"]) == sorted(expected)  # exactly one row per input
    for row in m.itertuples():
        status, prefix = expected[row.path]
        assert row.status == status, (row.path, row.reason)
        assert row.reason.startswith(prefix), (row.path, row.reason)
        if status == "quarantined":
            assert ". Fix: " in row.reason and not isinstance(row.volume_id, str)
    v = read_table(run / "volumes.parquet").set_index("sources", drop=False)
    validate_frame(v.reset_index(drop=True), "volumes")
    assert len(v) == 4
    by_source = {r.sources[0]: r for r in v.itertuples()}
    assert {s: r.source_format for s, r in by_source.items()} == {
        "marker.png": "png",
        "deep16.png": "png",
        "xray.jpg": "jpeg",
        "film.tif": "tiff",
    }
    for rec in by_source.values():
        assert list(rec.spacing) == [1.0, 1.0, 1.0] and rec.orientation == "none" and rec.modality == ""
        assert rec.warnings[0].startswith("pixel spacing unknown")
        side = json.loads((run / rec.sidecar).read_text())
        assert side["spacing_known"] is False and side["spacing_unit"] == "pixel"
        img = nib.load(run / rec.path)
        assert img.header.get_xyzt_units()[0] == "unknown"  # never claims millimetres
    deep = nib.load(run / by_source["deep16.png"].path)
    want = (np.arange(30 * 20).reshape(30, 20) * 100).astype(np.uint16)
    assert deep.get_data_dtype() == np.uint16
    assert np.array_equal(np.asanyarray(deep.dataobj)[:, ::-1, 0].T, want)


def test_picture_is_upright_in_plot_slice(ingested: tuple[Path, Path, dict, str], tmp_path: Path) -> None:
    _, run, _, _ = ingested
    v = read_table(run / "volumes.parquet")
    for source in ("marker.png", "film.tif"):
        rec = v[v["sources"].map(lambda s, source=source: list(s) == [source])].iloc[0]
        fig = plot_slice(run / rec["path"], out=tmp_path / f"{source}.png")
        shown = np.asarray(fig.axes[0].images[0].get_array())  # drawn with origin="lower"
        assert np.array_equal(shown[::-1], _asymmetric()), source  # on screen: exactly the picture
        fig.canvas.draw()
        screen = np.asarray(fig.canvas.buffer_rgba())[..., 0].astype(int)
        x0, y0, w, h = (round(t) for t in fig.axes[0].get_window_extent().bounds)
        top = screen.shape[0] - (y0 + h)  # screen rows count from the top, display bounds from the bottom
        area = screen[top : top + h, x0 : x0 + w]
        bright = np.argwhere(area > 240)
        assert bright.size, source
        cy, cx = bright.mean(axis=0) / np.array(area.shape)
        assert cy < 0.3 and cx < 0.35, (source, cy, cx)  # the bright block is drawn top-left


def test_no_picture_metadata_in_outputs_or_logs(ingested: tuple[Path, Path, dict, str]) -> None:
    _, run, _, printed = ingested
    assert not any(s in printed for s in SECRET)
    for path in run.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        for s in SECRET:
            assert s.encode() not in data, path
    for table in ("manifest.parquet", "volumes.parquet"):
        text = read_table(run / table).astype(str).to_string()
        assert not any(s in text for s in SECRET)


def test_rerun_skips_unchanged_pictures(ingested: tuple[Path, Path, dict, str], tmp_path: Path) -> None:
    archive, run, expected, _ = ingested
    again = ingest_archive(archive, run, workers=1, processes=False, key_file=tmp_path / "k")
    assert again.n_skipped == len(expected)
    assert sorted(read_table(run / "manifest.parquet")["path"]) == sorted(expected)


def test_covid_chestxray_images_become_volumes(shared_data: Path, tmp_path: Path) -> None:
    images = shared_data / "covid_chestxray_subset" / "images"
    if not images.is_dir():
        pytest.skip("covid_chestxray_subset/images not in the shared data")
    files = sorted(p.name for p in images.iterdir())
    assert len(files) == 34
    run, meta = tmp_path / "run", images.parent / "metadata_subset_licensed.csv"
    ids = IdTable.load(meta, IdColumns(path="filename", patient="Patientid", modality="modality"))
    result = ingest_archive(images, run, workers=1, processes=False, key_file=tmp_path / "k", ids=ids)
    m = read_table(run / "manifest.parquet")
    assert sorted(m["path"]) == files and result.counts == {"ingested": 34}
    assert (m["format"].value_counts().to_dict()) == {"jpeg": 28, "png": 6}
    v = read_table(run / "volumes.parquet")
    assert len(v) == 34 and set(v["volume_id"]) == set(m["volume_id"])
    # the collection's own metadata gives every picture its patient (19) and modality: alignable
    with meta.open(encoding="utf-8") as fh:
        truth = {r["filename"]: r for r in csv.DictReader(fh)}
    pz = Pseudonymizer(load_key(tmp_path / "k"))
    for rec in v.itertuples():
        assert rec.patient_id == pz.id(truth[rec.sources[0]]["Patientid"], "patient")
        assert rec.modality == truth[rec.sources[0]]["modality"]
    assert v["patient_id"].nunique() == 19 and v["modality"].value_counts().to_dict() == {
        "X-ray": 27,
        "CT": 7,
    }
    for rec in v.itertuples():
        with Image.open(images / rec.sources[0]) as im:
            want = np.asarray(im.convert("L"))  # none of them carries an EXIF rotation
        got = np.asanyarray(nib.load(run / rec.path).dataobj)
        assert got.dtype == np.uint8 and got.shape == (want.shape[1], want.shape[0], 1)
        assert np.array_equal(got[:, ::-1, 0].T, want), rec.sources[0]
