"""Movie readers: TIFF stacks, .npy arrays and folders of numbered images, with clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from lptem.clients.camera.movies import MovieError, as_wire_frame, iter_frames, open_movie

STACK = (np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7) * 97) % 65535


@pytest.mark.parametrize("imagej", [False, True])
def test_tiff_stack(tmp_path, imagej):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, STACK, imagej=imagej)
    with open_movie(path) as movie:
        assert len(movie) == 5
        for i, frame in iter_frames(movie):
            np.testing.assert_array_equal(frame, STACK[i])


def test_compressed_tiff_stack_reads_page_by_page(tmp_path):
    path = tmp_path / "movie.tiff"
    for frame in STACK:
        tifffile.imwrite(path, frame, append=True, compression="zlib")
    with open_movie(path) as movie:
        assert len(movie) == 5
        np.testing.assert_array_equal(movie.frame(3), STACK[3])


def test_npy_stack_and_single_frame(tmp_path):
    np.save(tmp_path / "a.npy", STACK.astype(np.float32))
    np.save(tmp_path / "b.npy", STACK[0])
    a, b = open_movie(tmp_path / "a.npy"), open_movie(tmp_path / "b.npy")
    assert (len(a), len(b)) == (5, 1)
    assert a.frame(2).dtype == np.float32
    np.testing.assert_array_equal(b.frame(0), STACK[0])


def test_folder_in_natural_order_and_rgb_jpegs_become_grey(tmp_path):
    for i in (1, 2, 10):
        grey = np.full((8, 9), 20 * i, dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), np.dstack([grey] * 3))
    (tmp_path / "notes.txt").write_text("not an image")
    movie = open_movie(tmp_path)
    assert len(movie) == 3
    levels = [int(movie.frame(i)[0, 0]) for i in range(3)]
    assert levels == [20, 40, 200]  # frame2 before frame10, as SAM-EM numbers its JPEGs
    assert movie.frame(0).ndim == 2


def test_sixteen_bit_png(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), STACK[1])
    np.testing.assert_array_equal(open_movie(tmp_path).frame(0), STACK[1])


def test_dtype_conversion_is_lossless():
    assert as_wire_frame(np.array([[1, 2]], dtype=np.int32)).dtype == np.uint16
    assert as_wire_frame(np.array([[-1, 2]], dtype=np.int32)).dtype == np.float32
    assert as_wire_frame(np.array([[1.5]], dtype=np.float64)).dtype == np.float32
    assert as_wire_frame(np.array([[True]])).dtype == np.uint8


def test_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(MovieError, match="no such file"):
        open_movie(tmp_path / "missing.tif")
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(MovieError, match="unsupported movie"):
        open_movie(tmp_path / "movie.avi")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(MovieError, match="not a readable TIFF"):
        open_movie(tmp_path / "bad.tif")
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(MovieError, match=r"not a readable \.npy"):
        open_movie(tmp_path / "bad.npy")
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(MovieError, match="expected"):
        open_movie(tmp_path / "four.npy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MovieError, match=r"no .* images"):
        open_movie(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(MovieError, match="unreadable image"):
        open_movie(broken).frame(0)
