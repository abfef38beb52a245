"""CURVE by role on the daemon's real sockets (loopback, free ports): who may send, subscribe, command."""

from __future__ import annotations

import numpy as np
import pytest

from lptem.clients.wire.control import ControlClient, ControlError
from lptem.clients.wire.sender import FrameSender
from lptem.clients.wire.subscriber import Subscriber
from lptem.service.daemon import Daemon, DaemonConfig, InsecureBindError, check_exposure
from lptem.service.keys import KeyFolder
from lptem.service.mailbox import Policy
from lptem.service.protocol.curve import ClientKeys, KeyFileError, client_keys, is_loopback
from tests.conftest import wait_until

FRAME = np.zeros((64, 64), dtype=np.uint16)


@pytest.fixture
def keys(tmp_path):
    folder = KeyFolder(tmp_path / "keys")
    folder.init()
    folder.add("cam", "camera")
    folder.add("alice", "viewer")
    folder.add("olga", "operator")
    return folder


def client(folder: KeyFolder, name: str) -> ClientKeys:
    return ClientKeys.load(folder.path / "clients" / f"{name}.key_secret", folder.path / "server.key")


def stranger(folder: KeyFolder, tmp_path) -> ClientKeys:
    """A well-formed key pair the daemon has never seen, with the daemon's true public key."""
    other = KeyFolder(tmp_path / "other")
    other.init()
    other.add("mallory", "operator")
    return ClientKeys.load(other.path / "clients" / "mallory.key_secret", folder.path / "server.key")


def send_frames(daemon: Daemon, keys: ClientKeys | None, n: int, first: int = 0) -> None:
    with FrameSender(daemon.endpoints["ingest"], keys=keys, first_frame=first) as sender:
        for _ in range(n):
            sender.send(FRAME)


def test_an_authorised_camera_is_processed_and_an_unknown_one_is_refused_and_counted(
    make_daemon, keys, tmp_path
):
    daemon = make_daemon(keys=keys.path, policy=Policy.QUEUE)
    olga = client(keys, "olga")
    send_frames(daemon, stranger(keys, tmp_path), 5)
    assert wait_until(lambda: daemon.stats.auth_failures["ingest"] >= 1)
    refused = daemon.stats.auth_failures["ingest"]
    send_frames(daemon, None, 5)  # no CURVE at all: refused before ZAP, counted from the monitor
    assert wait_until(lambda: daemon.stats.auth_failures["ingest"] > refused)
    refused = daemon.stats.auth_failures["ingest"]
    wrong_server = ClientKeys.load(
        keys.path / "clients" / "cam.key_secret", tmp_path / "other" / "server.key"
    )
    send_frames(daemon, wrong_server, 5)  # an authorised key aimed at another daemon's public key
    assert wait_until(lambda: daemon.stats.auth_failures["ingest"] > refused)
    assert daemon.stats.received == 0
    send_frames(daemon, client(keys, "cam"), 5)
    assert wait_until(lambda: daemon.stats.processed == 5)
    with ControlClient(daemon.endpoints["control"], keys=olga) as c:
        status = c.status()
    assert status.frames_processed == 5
    assert status.extra["security"]["curve"] is True
    assert status.extra["security"]["auth_failures"]["ingest"] >= 1


def test_a_viewer_may_read_but_not_command_and_an_operator_may_both(make_daemon, keys):
    daemon = make_daemon(keys=keys.path)
    with ControlClient(daemon.endpoints["control"], keys=client(keys, "alice")) as viewer:
        assert viewer.ping() > 0
        assert viewer.list_objects() == []
        for command in (lambda: viewer.add_object(box=[10, 10, 30, 30]), lambda: viewer.remove_object(1)):
            with pytest.raises(ControlError, match="viewer role may not"):
                command()
        assert viewer.list_objects() == []
    with ControlClient(daemon.endpoints["control"], keys=client(keys, "olga")) as operator:
        assert operator.add_object(box=[10, 10, 30, 30]) == 1
        operator.remove_object(1)
    assert daemon.stats.auth_failures["control"] == 2


def test_a_camera_key_cannot_use_the_control_socket(make_daemon, keys):
    daemon = make_daemon(keys=keys.path)
    with (
        ControlClient(daemon.endpoints["control"], keys=client(keys, "cam"), timeout_s=1.0) as camera,
        pytest.raises(TimeoutError),  # refused at the handshake: no reply ever comes
    ):
        camera.ping()
    assert daemon.stats.auth_failures["control"] >= 1


def test_a_subscriber_needs_a_viewer_or_operator_key(make_daemon, keys, tmp_path):
    daemon = make_daemon(keys=keys.path, status_interval_s=0.1)
    endpoint = daemon.endpoints["publish"]
    with (
        Subscriber(endpoint, ("status",), keys=client(keys, "alice")) as viewer,
        Subscriber(endpoint, ("status",), keys=client(keys, "cam")) as camera,
        Subscriber(endpoint, ("status",), keys=stranger(keys, tmp_path)) as unknown,
        Subscriber(endpoint, ("status",)) as plain,
    ):
        assert viewer.recv(5.0) is not None
        for refused in (camera, unknown, plain):
            assert refused.recv(0.5) is None
    assert wait_until(lambda: daemon.stats.auth_failures["publish"] >= 3)  # camera, unknown key, no CURVE


def test_a_revoked_key_stops_working_without_a_restart(make_daemon, keys):
    daemon = make_daemon(keys=keys.path, status_interval_s=0.1)
    alice, cam = client(keys, "alice"), client(keys, "cam")
    with (
        Subscriber(daemon.endpoints["publish"], ("status",), keys=alice) as sub,
        ControlClient(daemon.endpoints["control"], keys=alice, timeout_s=1.0) as viewer,
        FrameSender(daemon.endpoints["ingest"], keys=cam) as sender,
    ):
        assert sub.recv(5.0) is not None
        assert viewer.ping() > 0
        sender.send(FRAME)
        assert wait_until(lambda: daemon.stats.processed == 1)
        keys.revoke("alice")
        keys.revoke("cam")
        assert sorted(daemon.reload_keys()) == ["alice", "cam"]  # what SIGHUP (or the folder watch) does
        with pytest.raises(ControlError, match="not authorised"):  # same connection, now refused
            viewer.ping()
        sender.send(FRAME)
        assert wait_until(lambda: daemon.stats.auth_failures["ingest"] >= 1)
        while sub.recv(0.3) is not None:  # what was already on its way
            pass
        assert sub.recv(1.0) is None  # the publisher re-bound; alice cannot come back
    assert daemon.stats.processed == 1


def test_a_key_revoked_on_disk_is_noticed_by_the_folder_watch(make_daemon, keys):
    daemon = make_daemon(keys=keys.path)
    with ControlClient(daemon.endpoints["control"], keys=client(keys, "olga"), timeout_s=2.0) as c:
        assert c.ping() > 0
        keys.revoke("olga")  # as `lptem keys revoke` does: no signal, no call into the daemon
        assert wait_until(lambda: _refused(c), timeout_s=5.0, interval_s=0.2)


def _refused(c: ControlClient) -> bool:
    try:
        c.ping()
    except ControlError:
        return True
    return False


def test_network_binds_without_keys_are_refused_unless_insecure(tmp_path):
    exposed = DaemonConfig(ingest="tcp://*:5555")
    with pytest.raises(InsecureBindError, match=r"ingest tcp://\*:5555.*--keys"):
        Daemon(exposed)
    check_exposure(DaemonConfig(ingest="tcp://*:5555", insecure=True))  # accepted, with a warning
    check_exposure(DaemonConfig(ingest="tcp://*:5555", keys=tmp_path))  # CURVE covers the sockets
    with pytest.raises(InsecureBindError, match="metrics"):
        check_exposure(DaemonConfig(metrics_port=9105, metrics_addr="0.0.0.0", keys=tmp_path))


def test_insecure_is_said_in_every_status(make_daemon):
    daemon = make_daemon(publish="tcp://0.0.0.0:*", insecure=True)
    warning = daemon.status().extra["security"]["warning"]
    assert "publish tcp://0.0.0.0:*" in warning
    assert "without authentication" in warning


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/lptem", True),
        ("inproc://x", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://10.0.0.5:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://microscope.lab:5555", False),
    ],
)
def test_what_counts_as_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_client_keys_need_both_halves_and_a_secret(keys, monkeypatch):
    monkeypatch.delenv("LPTEM_KEY", raising=False)
    monkeypatch.delenv("LPTEM_SERVER_KEY", raising=False)
    assert client_keys(None, None) is None
    with pytest.raises(KeyFileError, match="--server-key"):
        client_keys(keys.path / "clients" / "cam.key_secret", None)
    with pytest.raises(KeyFileError, match="no secret key"):
        client_keys(keys.path / "clients" / "cam.key", keys.path / "server.key")
    monkeypatch.setenv("LPTEM_KEY", str(keys.path / "clients" / "cam.key_secret"))
    monkeypatch.setenv("LPTEM_SERVER_KEY", str(keys.path / "server.key"))
    assert client_keys(None, None) == client(keys, "cam")


def test_the_key_folder_refuses_bad_names_duplicates_and_unknown_revocations(keys, tmp_path):
    for name in ("", "../x", "server", "a b", "-x", "x\n"):
        with pytest.raises(KeyFileError):
            keys.add(name, "viewer")
    with pytest.raises(KeyFileError, match="already authorised"):
        keys.add("alice", "operator")
    with pytest.raises(KeyFileError, match="no authorised key"):
        keys.revoke("nobody")
    secret = keys.path / "clients" / "alice.key_secret"
    assert secret.stat().st_mode & 0o077 == 0
    (keys.authorized / "viewer" / "junk.key").write_text("not a key")
    assert [k.name for k in keys.authorised()] == ["cam", "alice", "olga"]
    assert any("junk.key" in p for p in keys.problems())


def test_the_key_folder_keeps_its_secrets_to_its_owner(keys):
    assert keys.path.stat().st_mode & 0o777 == 0o700
    for secret in (keys.path / "server.key_secret", *keys.path.glob("clients/*.key_secret")):
        assert secret.stat().st_mode & 0o777 == 0o600
    assert (keys.path / "server.key").stat().st_mode & 0o777 == 0o644


def test_a_public_key_is_authorised_once_and_never_a_secret(keys, tmp_path):
    with pytest.raises(KeyFileError, match="holds a secret"):
        keys.add("eve", "operator", public_key_file=keys.path / "clients" / "alice.key_secret")
    with pytest.raises(KeyFileError, match="already authorised as 'alice'"):
        keys.add("alice2", "operator", public_key_file=keys.path / "clients" / "alice.key")
    assert not list(keys.authorized.glob("*/eve.key")) + list(keys.authorized.glob("*/alice2.key"))
