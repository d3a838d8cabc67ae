"""Offline mode: every connection that would leave this machine fails loudly.

With the environment variable GENFLOW_OFFLINE=1, importing genflow calls `block_network()`: name
lookups of other hosts and socket connections to non-loopback addresses raise
`NetworkBlockedError` naming what was reached for, so an accidental download (a dataset, weights)
or a W&B sync is an error instead of a silent dependency on the network. Loopback stays open
(DDP's gloo rendezvous, W&B's local service). The variable is inherited by child processes (DDP
ranks re-import genflow), and the HTTP(S) proxy variables point at a closed loopback port, so
child programs that are not Python (W&B's service binary) cannot reach the network either.

The test suite and `make demo` run this way.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ENV = "GENFLOW_OFFLINE"
CLOSED_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkBlockedError(ConnectionError):
    """A connection to another machine was attempted while genflow runs offline."""


def is_local(host: object) -> bool:
    """Whether `host` (a name or an IP address) is this machine."""
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return name == socket.gethostname().lower()
    return address.is_loopback or address.is_unspecified


def _refuse(what: str) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"genflow runs offline ({ENV}=1) and something tried to reach {what}. Nothing here may "
        f"use the network: give datasets as local files (download=False, a `root` that holds "
        f"them), weights as local paths, and keep W&B offline (--run.wandb offline). Unset "
        f"{ENV} to allow network access."
    )


def block_network() -> None:
    """Refuse name lookups of other hosts and connections to non-loopback addresses in this
    process, and route its children's HTTP(S) through a closed local port. Idempotent."""
    if getattr(socket.socket.connect, "_genflow_offline", False):
        return
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise _refuse(f"{address[0]}:{address[1]}")
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise _refuse(f"{address[0]}:{address[1]}")
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_local(host if isinstance(host, str) else host.decode()):
            raise _refuse(f"host {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    for fn in (guarded_connect, guarded_connect_ex, guarded_getaddrinfo):
        fn._genflow_offline = True
    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo
    os.environ[ENV] = "1"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = CLOSED_PROXY
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "localhost,127.0.0.1,::1"
