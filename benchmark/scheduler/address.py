"""`--address` of `peft-bench run`: the forms Ray accepts for an existing cluster, checked without importing ray,
so a typo fails in one line before Ray (and its output) starts."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable

from benchmark.errors import UserError

ADDRESS_FORMS = "auto (the cluster this node belongs to), HOST:PORT (its GCS) or ray://HOST:10001 (Ray Client)"


def check_address(address: str) -> str:
    """The forms ray.init accepts for an existing cluster; anything else is a one-line UserError."""
    if address == "auto" or re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d{1,5}", address):
        return address
    raise UserError(f"--address {address!r}: allowed: {ADDRESS_FORMS}")


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ray.init retries an unreachable GCS for minutes: try the TCP port first and fail in seconds."""
    if address == "auto":
        return  # ray.init itself fails fast when no cluster runs on this node
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"--address {address}: nothing answers there ({exc.strerror or exc}); allowed: {ADDRESS_FORMS}, "
                        "of a running cluster") from None


def watch_head(gcs_address: str, say: Callable[[str], None], every_s: float = 1.0, misses: int = 3) -> threading.Event:
    """Say once, in one line, when the cluster's head stops answering. Ray's driver then exits by itself (after
    gcs_rpc_server_reconnect_timeout_s, 60 s by default) and explains only in the log file. Returns the event
    that ends the watch."""
    stop = threading.Event()
    host, _, port = gcs_address.rpartition(":")

    def watch() -> None:
        missed = 0
        while not stop.wait(every_s):
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=every_s).close()
                missed = 0
            except OSError:
                missed += 1
                if missed == misses:
                    say(f"the Ray head ({gcs_address}) stopped answering: this run ends; what it stored stays, and the "
                        "same command on a running cluster resumes from there")
                    return

    threading.Thread(target=watch, name="peft-bench-head-watch", daemon=True).start()
    return stop
