"""Wire protocol v1: encoding, validation with reasons, results and control requests."""

from __future__ import annotations

import dataclasses
import re

import msgpack
import numpy as np
import pytest

from lptem.engine.api import Box
from lptem.service import protocol as p
from lptem.service.protocol import RejectReason as R
from tests.conftest import REPOSITORY


def frame_parts(array, frame=0, t_ns=1, **header):
    h = {
        "v": 1,
        "type": "frame",
        "frame": frame,
        "t_ns": t_ns,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        **header,
    }
    return [msgpack.packb(h), array.tobytes()]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_encode_decode_roundtrip_without_copy(dtype):
    array = (np.arange(12).reshape(3, 4) * 3).astype(dtype)
    header = p.encode_header(7, 123, (3, 4), dtype, pixel_size_nm=0.5, exposure_s=0.01, series="s1")
    payload = memoryview(array.tobytes())
    decoded = p.decode_ingest([header, payload])
    assert isinstance(decoded, p.IngestFrame)
    assert (decoded.frame, decoded.t_ns, decoded.series) == (7, 123, "s1")
    assert decoded.pixel_size_nm == 0.5
    assert decoded.exposure_s == 0.01
    np.testing.assert_array_equal(decoded.pixels, array)
    assert decoded.pixels.base is not None  # a view on the received buffer, not a copy
    assert not decoded.pixels.flags.writeable


def test_wire_dtype_is_little_endian():
    big = np.arange(4, dtype=">u2").reshape(2, 2)
    assert p.wire_dtype_name(big) == "uint16"
    header = msgpack.unpackb(p.encode_header(0, 0, (2, 2), "uint16"))
    assert header["dtype"] == "uint16"
    with pytest.raises(ValueError, match="float64"):
        p.wire_dtype_name(np.zeros((2, 2)))


def test_markers():
    start = p.decode_ingest([p.encode_marker("start", "run-3", pixel_size_nm=0.7, operator="ana")])
    assert start == p.SeriesMarker("start", "run-3", {"pixel_size_nm": 0.7, "operator": "ana"})
    end = p.decode_ingest([p.encode_marker("end")])
    assert end == p.SeriesMarker("end", None, {})


good = np.zeros((4, 5), dtype=np.uint16)
SHM_REF = {"ring": "lptem-1-0000abcd", "slot": 0, "seq": 2}
BAD_MESSAGES = [
    ([], R.PARTS),
    ([b"a", b"b", b"c"], R.PARTS),
    ([p.encode_header(0, 0, (4, 5), "uint16")], R.PARTS),
    ([p.encode_marker("start"), b"x"], R.PARTS),
    ([b"\xc1\xff\x00", good.tobytes()], R.MSGPACK),
    ([msgpack.packb([1, 2, 3]), good.tobytes()], R.HEADER),
    ([msgpack.packb({"type": "frame"}), good.tobytes()], R.HEADER),
    (frame_parts(good, v=2), R.VERSION),
    (frame_parts(good, type="picture"), R.TYPE),
    (
        [msgpack.packb({"v": 1, "type": "frame", "t_ns": 0, "shape": [4, 5], "dtype": "uint16"}), b""],
        R.HEADER,
    ),
    (frame_parts(good, frame="7"), R.HEADER),
    (frame_parts(good, frame=True), R.HEADER),
    (frame_parts(good, frame=-1), R.FRAME_NUMBER),
    (frame_parts(good, t_ns=-5), R.HEADER),
    (frame_parts(good, t_ns=1.5), R.HEADER),
    (frame_parts(good, dtype="int64"), R.DTYPE),
    (frame_parts(good, dtype=16), R.DTYPE),
    (frame_parts(good, shape=[4, 5, 1]), R.SHAPE),
    (frame_parts(good, shape=[0, 5]), R.SHAPE),
    (frame_parts(good, shape=[100000, 100000]), R.SHAPE),
    (frame_parts(good, shape=[9000, 9000]), R.SHAPE),
    (frame_parts(good, shape="4x5"), R.SHAPE),
    (frame_parts(good, shape=[4, 6]), R.SIZE),
    ([frame_parts(good)[0], good.tobytes()[:-1]], R.SIZE),
    (frame_parts(np.full((3, 3), np.nan, dtype=np.float32)), R.NONFINITE),
    (frame_parts(np.array([[1.0, np.inf]], dtype=np.float32)), R.NONFINITE),
    (frame_parts(good, pixel_size_nm=-1.0), R.HEADER),
    (frame_parts(good, pixel_size_nm="big"), R.HEADER),
    (frame_parts(good, series=[1]), R.HEADER),
    ([msgpack.packb({**msgpack.unpackb(frame_parts(good)[0]), "shm": {"ring": "x"}})], R.SHM),
    ([msgpack.packb({**msgpack.unpackb(frame_parts(good)[0]), "shm": SHM_REF | {"seq": 3}})], R.SHM),
    ([msgpack.packb({**msgpack.unpackb(frame_parts(good)[0]), "shm": SHM_REF}), good.tobytes()], R.PARTS),
]


@pytest.mark.parametrize(("parts", "reason"), BAD_MESSAGES)
def test_rejects_carry_their_reason(parts, reason):
    with pytest.raises(p.FrameRejected) as info:
        p.decode_ingest(parts)
    assert info.value.reason is reason
    assert info.value.detail


def test_every_reject_reason_is_exercised_here_or_by_the_sequence_guard():
    # FRAME_ORDER: test_ingest_sequence; INTERNAL: test_safety_nets; TORN: e2e/test_shm_ingest
    reasons = {reason for _, reason in BAD_MESSAGES} | {R.FRAME_ORDER, R.INTERNAL, R.TORN}
    assert reasons == set(R)


def test_a_shared_memory_frame_is_one_part_naming_its_slot():
    header = {**msgpack.unpackb(frame_parts(good)[0]), "shm": SHM_REF}
    decoded = p.decode_ingest([msgpack.packb(header)])
    assert isinstance(decoded, p.ShmFrame)
    assert (decoded.ref.ring, decoded.ref.slot, decoded.ref.seq) == ("lptem-1-0000abcd", 0, 2)
    assert decoded.shape == good.shape


def test_extra_header_keys_are_ignored():
    decoded = p.decode_ingest(frame_parts(good, camera="K3", gain=2.5))
    assert isinstance(decoded, p.IngestFrame)


def test_track_message_roundtrip_and_optional_nm():
    objects = (
        p.TrackedObject(1, 10.5, 20.25, 33.0, 120.0, 7.5, True, (5, 15, 17, 26), 5.25, 10.125),
        p.TrackedObject(2, 1.0, 2.0, -10.0, 0.0, 0.0, False, (0, 0, 3, 3)),
    )
    message = p.TrackMessage(5, 0, 100, 110, 120, "classical", 2, objects, 0.5, "s")
    topic, payload = p.encode_result(p.TOPIC_TRACK, message)
    wire = msgpack.unpackb(payload)
    assert wire["v"] == 1
    assert set(wire["objects"][0]) == {f.name for f in dataclasses.fields(p.TrackedObject)}
    assert "x_nm" not in wire["objects"][1]
    assert p.decode_result(topic, payload) == message
    shaped = p.TrackMessage(5, 0, 100, 110, 120, "classical", 2, objects, 0.5, "s", (480, 640))
    assert p.decode_result(*p.encode_result(p.TOPIC_TRACK, shaped)) == shaped


def test_consumers_ignore_result_keys_they_do_not_know():
    """Within v1 a newer daemon may add keys; an older client must still decode its messages."""
    obj = p.TrackedObject(1, 10.5, 20.25, 33.0, 120.0, 7.5, True, (5, 15, 17, 26))
    wire = p.TrackMessage(5, 0, 100, 110, 120, "classical", 2, (obj,)).to_wire()
    wire["future_key"] = [1, 2]
    wire["objects"][0]["future_object_key"] = "x"
    decoded = p.decode_result(p.TOPIC_TRACK, msgpack.packb(wire))
    assert decoded == p.TrackMessage(5, 0, 100, 110, 120, "classical", 2, (obj,))


def test_preview_roundtrip():
    image = np.random.default_rng(0).random((6, 8)).astype(np.float32)
    labels = np.arange(48, dtype=np.uint16).reshape(6, 8)
    topic, payload = p.encode_result(p.TOPIC_PREVIEW, p.PreviewMessage(3, 9, 4, image, labels))
    back = p.decode_result(topic, payload)
    assert isinstance(back, p.PreviewMessage)
    np.testing.assert_array_equal(back.image, image)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.scale == 4


def test_unknown_topic_decodes_to_dict():
    assert p.decode_result(b"future-topic", msgpack.packb({"a": 1})) == {"a": 1}


# ------------------------------------------------------------------------------------------ control


def test_parse_add_object_with_box_and_points():
    cmd = p.parse_command(
        p.command_request("add_object", box=[1, 2, 30, 40], points=[[5, 6, 1], [7, 8, 0]], id=4)
    )
    assert isinstance(cmd, p.AddObject)
    assert cmd.NAME == "add_object"
    assert cmd.obj_id == 4
    assert cmd.prompt.box == Box(1.0, 2.0, 30.0, 40.0)
    assert [pt.positive for pt in cmd.prompt.points] == [True, False]
    assert cmd.arguments() == {
        "id": 4,
        "box": [1.0, 2.0, 30.0, 40.0],
        "points": [[5.0, 6.0, 1], [7.0, 8.0, 0]],
    }


@pytest.mark.parametrize("kind", p.COMMAND_TYPES)
def test_every_command_parses_to_its_own_type(kind):
    """One typed class per command: each request name comes back as its class, with its arguments."""
    examples: dict[str, dict[str, object]] = {
        "add_object": {"box": [0, 0, 4, 4]},
        "remove_object": {"id": 2},
        "set_auto_detect": {"enabled": False},
        "set_msd": {"window": 64, "log_lags": True},
    }
    args = examples.get(kind.NAME, {})
    cmd = p.parse_command(p.command_request(kind.NAME, **args))
    assert type(cmd) is kind
    assert p.parse_command(p.command_request(kind.NAME, **cmd.arguments())) == cmd


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1]), "must be a map"),
        (p.command_request("fly"), "unknown command 'fly'"),
        (msgpack.packb({"x": 1}), "unknown command None"),
        (p.command_request("add_object"), "needs a box or at least one point"),
        (p.command_request("add_object", box=[1, 2, 3]), "'box' must be"),
        (p.command_request("add_object", box=[5, 5, 1, 1]), "x0 <= x1"),
        (p.command_request("add_object", box=[0, 0, float("nan"), 1]), "'box' must be"),
        (p.command_request("add_object", points=[[1, 2, 0]]), "positive point"),
        (p.command_request("add_object", points=[[1, 2, 3]]), "label must be 1"),
        (p.command_request("add_object", points=[[1, 2, 1.0]]), "label must be 1"),
        (p.command_request("add_object", points="here"), "'points' must be a list"),
        (p.command_request("add_object", points=[[1, 2]]), "a point must be"),
        (p.command_request("add_object", box=[0, 0, 1, 1], id=0), "'id' must be"),
        (p.command_request("add_object", box=[0, 0, 1, 1], id=70000), "'id' must be"),
        (p.command_request("add_object", box=[0, 0, 1, 1], id="a"), "'id' must be"),
        (p.command_request("remove_object"), "needs 'id'"),
        (p.command_request("set_auto_detect", enabled="yes"), "true or false"),
        (p.command_request("add_object", box=[0, 0, 1e12, 1e12]), "within a 16384x16384 px frame"),
        (p.command_request("add_object", points=[[-3.0, 2.0, 1]]), "within a 16384x16384 px frame"),
        (
            p.command_request("add_object", points=[[1, 2, 1]] * (p.MAX_PROMPT_POINTS + 1)),
            "at most 64 points",
        ),
        (b"\x80" * (p.MAX_REQUEST_BYTES + 1), "exceeds the limit"),
    ],
)
def test_bad_requests_name_the_problem(request_bytes, message):
    with pytest.raises(p.CommandError, match=message):
        p.parse_command(request_bytes)


def test_errors_quote_at_most_a_short_prefix_of_what_they_got():
    with pytest.raises(p.CommandError) as refused:
        p.parse_command(p.command_request("z" * 50_000))
    assert len(str(refused.value)) < p.QUOTE_CHARS + 200  # with the list of known commands
    assert "(50002 characters)" in str(refused.value)  # the repr's length, quotes included


def test_reply_decoding_requires_ok():
    assert p.decode_reply(p.encode_reply({"ok": True, "id": 3})) == {"ok": True, "id": 3}
    with pytest.raises(ValueError, match="malformed"):
        p.decode_reply(msgpack.packb({"id": 3}))


# ------------------------------------------------------------------------------------ the spec's bytes


def _hex_blocks(section: str) -> list[bytes]:
    """The fenced blocks of hex bytes in ``section`` of docs/protocol.md, in order."""
    text = (REPOSITORY / "docs" / "protocol.md").read_text()
    start = text.index(section)
    body = text[start : text.index("\n### ", start + len(section))]
    blocks = re.findall(r"```\n([0-9a-f \n]+)```", body)
    return [bytes.fromhex(block.replace("\n", " ")) for block in blocks]


def test_the_worked_example_of_the_spec_is_what_the_code_sends_and_accepts():
    """docs/protocol.md §2.2, byte for byte: the header encode_header writes, and the pixel part."""
    header, pixels = _hex_blocks("### 2.2 Worked example")
    assert p.encode_header(7, 1700000000000000000, (2, 3), "uint16") == header
    assert len(header) == 58
    assert np.arange(6, dtype="<u2").reshape(2, 3).tobytes() == pixels
    frame = p.decode_ingest([header, pixels])
    assert isinstance(frame, p.IngestFrame)
    assert (frame.frame, frame.t_ns) == (7, 1700000000000000000)
    assert frame.pixels.tolist() == [[0, 1, 2], [3, 4, 5]]
