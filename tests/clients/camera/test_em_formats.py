"""EM movie files written by the vendors' own software (../shared/testdata/em-formats, RosettaSciIO's test
data; read in place, never copied into the project): frame count, dtype, pixel size in nm and frame time
from each file, Gatan in-situ folders, and bad files refused with the file named."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from lptem.clients.camera.em_formats import LENGTH_NM, pixel_size_nm, time_axis_s
from lptem.clients.camera.movies import MovieError, open_movie

EM_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "em-formats"
needs_data = pytest.mark.skipif(
    not EM_DATA.is_dir(), reason=f"the vendor sample files are not here ({EM_DATA} is absent)"
)
pytest.importorskip("rsciio", reason="RosettaSciIO (lptem-live[formats]) is not installed")

# file -> frames, (rows, cols), dtype the wire gets, pixel size nm (None: uncalibrated), frame time s
VENDOR_FILES = {
    "digitalmicrograph/test_stackbuilder_imagestack.dm3": (
        3,
        (2, 16),
        np.float32,
        0.05998290330171585e3,
        None,
    ),
    "digitalmicrograph/3D/test-1.dm4": (2, (2, 2), np.float32, None, None),
    "digitalmicrograph/2D/test-1.dm4": (1, (2, 2), np.float32, None, None),
    "tia/old/64x64x5_TEM_preview.emi": (5, (64, 64), np.float32, 6.281833616298531, None),
    "emd/fei_example_tem_stack.emd": (2, (3, 3), np.float32, 8.172883192297851e-3, 0.8),
    "mrc/Custom_movie.mrc": (30, (16, 16), np.uint16, None, 1.0),
}


@needs_data
@pytest.mark.parametrize("name", sorted(VENDOR_FILES))
def test_a_vendor_file_reads_with_its_calibration(name: str) -> None:
    frames, shape, dtype, pixel_nm, frame_s = VENDOR_FILES[name]
    with open_movie(EM_DATA / name) as movie:
        assert len(movie) == frames
        last = movie.frame(frames - 1)
        assert last.shape == shape
        assert last.dtype == dtype
        assert movie.pixel_size_nm == (pytest.approx(pixel_nm, rel=1e-9) if pixel_nm else None)
        assert movie.frame_time_s == (pytest.approx(frame_s) if frame_s else None)


@needs_data
def test_the_ser_file_of_a_tia_series_reads_like_its_emi() -> None:
    with (
        open_movie(EM_DATA / "tia/old/64x64x5_TEM_preview.emi") as emi,
        open_movie(EM_DATA / "tia/old/64x64x5_TEM_preview_1.ser") as ser,
    ):
        np.testing.assert_array_equal(emi.frame(4), ser.frame(4))


@needs_data
def test_a_gatan_in_situ_folder_is_one_frame_per_file_in_natural_order(tmp_path: Path) -> None:
    source = EM_DATA / "digitalmicrograph/2D/test-1.dm4"
    for second in (0, 2, 10):  # Second_2 comes before Second_10
        folder = tmp_path / "Hour_00" / "Minute_00" / f"Second_{second}"
        folder.mkdir(parents=True)
        (folder / f"frame_{second}.dm4").symlink_to(source)
    with open_movie(tmp_path) as movie:
        assert len(movie) == 3
        assert movie._files[1].parent.name == "Second_2"  # type: ignore[attr-defined]
        np.testing.assert_array_equal(movie.frame(2), open_movie(source).frame(0))


@needs_data
def test_a_truncated_file_is_refused_with_its_name(tmp_path: Path) -> None:
    for name in ("emd/fei_example_tem_stack.emd", "digitalmicrograph/test_stackbuilder_imagestack.dm3"):
        whole = (EM_DATA / name).read_bytes()
        cut = tmp_path / Path(name).name
        cut.write_bytes(whole[: len(whole) // 3])
        with pytest.raises(MovieError, match=cut.name), open_movie(cut) as movie:
            movie.frame(len(movie) - 1)


def test_a_file_that_is_not_what_its_suffix_says_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "movie.dm4"
    fake.write_bytes(b"not a DigitalMicrograph file" * 10)
    with pytest.raises(MovieError, match=r"movie\.dm4: not a readable \.dm4 file"):
        open_movie(fake)


def test_an_unsupported_format_says_which_are(tmp_path: Path) -> None:
    other = tmp_path / "movie.avi"
    other.write_bytes(b"RIFF")
    with pytest.raises(MovieError, match=r"\.dm3, \.dm4, \.emd, \.emi, \.mrc, \.mrcs, \.ser"):
        open_movie(other)


@pytest.mark.parametrize(("units", "nm"), [("µm", 1e3), ("μm", 1e3), ("nm", 1.0), ("pm", 1e-3), ("Å", 0.1)])
def test_pixel_sizes_convert_to_nm(units: str, nm: float) -> None:
    axes = [{"navigate": True, "units": "s", "scale": 0.04}, {"units": units, "scale": 2.0},
            {"units": units, "scale": 2.0}]  # fmt: skip
    assert pixel_size_nm(axes) == pytest.approx(2.0 * nm)
    assert time_axis_s(axes) == pytest.approx(0.04)
    assert set(LENGTH_NM) >= {"µm", "nm", "pm"}


@pytest.mark.parametrize(
    "axes",
    [
        [{"units": "", "scale": 1.0}, {"units": "", "scale": 1.0}],  # uncalibrated
        [{"units": "nm", "scale": -1.0}, {"units": "nm", "scale": -1.0}],  # MRC's "unknown"
        [{"units": "nm", "scale": 1.0}, {"units": "nm", "scale": 2.0}],  # not square
        [{"units": "1/nm", "scale": 0.1}, {"units": "1/nm", "scale": 0.1}],  # a diffraction pattern
    ],
)
def test_no_pixel_size_rather_than_a_wrong_one(axes: list[dict[str, object]]) -> None:
    assert pixel_size_nm(axes) is None


def test_the_core_install_names_the_extra_when_rosettasciio_is_missing(tmp_path: Path, monkeypatch) -> None:
    real = importlib.import_module

    def without_rsciio(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("rsciio"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_rsciio)
    path = tmp_path / "a.mrc"
    shutil.copy(__file__, path)
    with pytest.raises(MovieError, match=r"pip install 'lptem-live\[formats\]'"):
        open_movie(path)


def test_an_mrc_written_by_mrcfile_gives_its_voxel_size_in_nm(tmp_path: Path) -> None:
    mrcfile = pytest.importorskip("mrcfile")
    path = tmp_path / "movie.mrc"
    stack = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.voxel_size = 2.5  # Å
    with open_movie(path) as movie:
        assert len(movie) == 3
        assert movie.pixel_size_nm == pytest.approx(0.25)
        assert movie.frame_time_s is None  # no Direct Electron info file beside it
        np.testing.assert_array_equal(movie.frame(2), stack[2])
