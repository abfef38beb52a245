"""Worked examples printed at the end of each ``lptem COMMAND --help`` (real commands, real options)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "serve": (
        ("lptem serve", "classical engine on 127.0.0.1 ports 5555 (frames), 5556 (results), 5557 (control)"),
        (
            "lptem serve --policy queue --record run1/ --metrics-port 9105",
            "lossless, recorded, with metrics",
        ),
        (
            "lptem serve --engine sam2 --model sam2.1_hiera_b+ --checkpoint ckpt.pt --device cuda",
            "SAM 2 on a GPU",
        ),
        (
            "lptem serve --keys keys/ --ingest tcp://*:5555 --publish tcp://*:5556 --control tcp://*:5557",
            "on the network, CURVE-authenticated by role (docs/security.md)",
        ),
        ("lptem serve --config /etc/lptem/lptem.toml", "settings from a file (lptem config show)"),
    ),
    "config": (
        ("lptem config show --config /etc/lptem/lptem.toml", "each setting serve would use, and its source"),
        ("lptem config show --metrics-port 9105", "with a flag; the TOML it prints starts a config file"),
        ("lptem config check /etc/lptem/lptem.toml", "check a file and LPTEM_* variables, start nothing"),
    ),
    "health": (
        ("lptem health", "is the local daemon (metrics on port 9105) ready? exit 0 or 1"),
        ("lptem health --live --url http://10.0.0.5:9105", "only alive (threads run, engine not stuck)"),
    ),
    "keys": (
        ("lptem keys init keys/", "the daemon's key pair in keys/ (then: lptem serve --keys keys/)"),
        ("lptem keys add keys/ camera-pc --role camera", "a key pair for the camera PC"),
        ("lptem keys add keys/ alice --role viewer", "a viewer: subscribe and read status"),
        ("lptem keys list keys/", "who is authorised, by role"),
        ("lptem keys revoke keys/ alice", "take alice's key back (the daemon notices in ~1 s)"),
    ),
    "replay": (
        ("lptem replay movie.tif --fps 50", "stream a TIFF stack at camera speed"),
        ("lptem replay frames/ --pixel-size-nm 0.25", "a folder of numbered JPEG/PNG, as fast as accepted"),
        ("lptem replay movie.mrc --fps 25 --shm 8", "a 4k movie to a daemon on this host, via shared memory"),
    ),
    "record": (("lptem record run1/ --duration 60", "one minute of a running daemon's results"),),
    "prompt": (
        ("lptem prompt --box 100 120 160 180", "track the particle inside this box (px)"),
        ("lptem prompt --point 130 150 1 --id 2", "correct object 2 with a click on it"),
        ("lptem prompt --list", "the tracked objects and where they are"),
    ),
    "status": (
        ("lptem status", "counters, rates, latency and objects of the local daemon"),
        ("lptem status --control tcp://10.0.0.5:5557 --watch 1", "a remote daemon, every second"),
    ),
    "msd": (
        ("lptem msd", "show the live MSD settings"),
        ("lptem msd --window 512 --lags 64 --log-lags on", "change them (the window starts again)"),
    ),
    "control": (
        ("lptem control centre --particle 1", "keep particle 1 centred by moving the stage"),
        ("lptem control dose --alpha-below 0.4 --lower-to 50", "lower the dose while α < 0.4"),
        ("lptem control centre --dry-run --duration 30", "log what it would do, move nothing"),
        (
            "lptem control centre --microscope temscript+http://tem-pc:8080 --calibration stage.toml",
            "a Thermo Fisher microscope's stage, through its calibrated map (docs/instruments.md)",
        ),
        (
            "lptem control dose --microscope temscript+http://tem-pc:8080 --alpha-below 0.4 --blank",
            "blank the beam while α < 0.4",
        ),
    ),
    "calibrate": (
        (
            "lptem calibrate --step-nm 20 --out stage.toml",
            "the simulated stage, on the particle nearest the centre",
        ),
        (
            "lptem calibrate --microscope temscript+http://tem-pc:8080 --step-nm 200 --out stage.toml",
            "a Thermo Fisher stage (then: lptem control centre --calibration stage.toml)",
        ),
    ),
    "bench": (("lptem bench latency --frames 2000", "latency per stage over the next 2000 frames"),),
    "sim": (
        ("lptem sim --fps 50 --particles 4", "stream 4 diffusing particles to the local daemon"),
        ("lptem sim --out movie/ --frames 200 --shape rod", "write a movie with its ground truth"),
    ),
    "analyze": (
        ("lptem analyze run1/", "MSD, D, α, VACF and displacements of a record, with figures"),
        ("lptem analyze trajectories.csv --pixel-size-nm 0.5 --fps 40", "a SAM-EM table"),
    ),
    "export": (
        ("lptem export --model sam2.1_hiera_t --checkpoint sam2.1_hiera_tiny.pt", "ONNX graphs in onnx/"),
    ),
    "demo": (
        ("lptem demo", "20 s of four simulated particles, tracked live and scored"),
        ("lptem demo --seconds 5 --liquid-nm 5", "a shorter run in thinner liquid"),
    ),
    "dashboard": (
        ("lptem dashboard", "watch and prompt the local daemon"),
        ("lptem dashboard --screenshot view.png --after 5", "save the window after 5 s and exit"),
    ),
}


def epilog(command: str, only: str | None = None) -> str | None:
    """The examples of ``command`` as a help epilog (those naming ``only``, for a nested subcommand)."""
    rows = [(c, why) for c, why in EXAMPLES.get(command, ()) if only is None or f" {only}" in c]
    if not rows:
        return None
    width = max(len(c) for c, _ in rows)
    if width + max(len(why) for _, why in rows) + 7 <= 100:
        lines = [f"  {c.ljust(width)}   # {why}" for c, why in rows]
    else:  # the comment under its command
        lines = [f"  {c}\n      # {why}" for c, why in rows]
    return "examples:\n" + "\n".join(lines)
