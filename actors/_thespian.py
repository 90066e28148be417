"""Thespian, imported once with the environment and the transport ptr needs.

Three changes to Thespian's TCP transport, made here before any actor system starts (every actor
process is forked from a process that imported this module, so each inherits them):

* **Bound where advertised.** Thespian binds its listening sockets to ``''`` (every interface)
  whatever address it advertises (``IPBase.IPActorAddress``: ``bindname = ('', port) if external``).
  ptr binds the advertised address: ``THESPIAN_BASE_IPADDR``, loopback unless a node says otherwise.
* **Authenticated frames** (Erlang's distribution cookie). Every frame Thespian sends is
  ``MAC(cookie, pickle) + pickle``; a received frame is unpickled only after its MAC
  checks, so a process without the cookie can neither deliver a message nor run code through a
  crafted pickle. The MAC is keyed BLAKE2b (RFC 7693; 0.6 us a frame here against 2.2 us for
  HMAC-SHA256). A refused frame is logged and counted (``refused_frames()``, shared by every
  process forked from the one that set the cookie). Thespian's two constant acknowledgements are
  compared byte for byte, never unpickled.
* **Linked death** (OTP links). ``link_to_parent()``, called as each actor process starts, asks
  Linux to SIGKILL the process when its parent (its supervisor's process) dies
  (``prctl(PR_SET_PDEATHSIG)``), so a killed supervisor's subtree goes with it.

The cookie is one per process: ``PTR_COOKIE`` (hex) when set, else random, made once. A system's
admin and actors inherit it; a node started elsewhere must be given the same one.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import logging
import multiprocessing
import os
import pickle
import secrets
import signal
from typing import Any

os.environ.setdefault("THESPIAN_BASE_IPADDR", "127.0.0.1")

from thespian.actors import (  # noqa: E402
    ActorAddress,
    ActorExitRequest,
    ActorSystem,
    ActorSystemException,
    ActorTypeDispatcher,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)
from protocols.errors import FrameRefusedError  # noqa: E402
from thespian.system.transport import IPBase as _ipbase  # noqa: E402
from thespian.system.transport import TCPTransport as _tcp  # noqa: E402
from thespian.system.transport import streamBuffer as _stream  # noqa: E402

__all__ = ["ActorAddress", "ActorExitRequest", "ActorSystem", "ActorSystemException",
           "ActorTypeDispatcher", "ChildActorExited",
           "DeadEnvelope", "PoisonMessage", "ThespianWatch", "WakeupMessage", "WatchMessage",
           "cookie_hex", "frame_codec", "link_to_parent", "plain_transport", "refused_frames",
           "set_cookie"]

log = logging.getLogger("ptr.transport")

MAC_BYTES = 32


# --- bound where advertised ---------------------------------------------------------------------

_original_address_init = _ipbase.IPActorAddress.__init__


def _bound_address_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_address_init(self, *args, **kwargs)
    if self.bindname[0] == "":  # Thespian's "every interface": bind what others are told instead
        self.bindname = (self.sockname[0], self.bindname[1])


_ipbase.IPActorAddress.__init__ = _bound_address_init


# --- authenticated frames -----------------------------------------------------------------------

class _FrameAuthenticator:
    """Thespian's ``serializer`` (``dumps``/``loads``) with a MAC in front of every pickle."""

    def __init__(self) -> None:
        self.key = b""
        self.keyed = hashlib.blake2b(digest_size=MAC_BYTES)
        self.refused: Any = None  # a shared counter, made with the key (before any fork)
        self.controls = {pickle.dumps(_stream.ackPacket): _stream.ackPacket,
                         pickle.dumps(_stream.ackDataErrPacket): _stream.ackDataErrPacket}

    def set_key(self, key: bytes) -> None:
        self.key = key
        self.keyed = hashlib.blake2b(key=key, digest_size=MAC_BYTES)
        if self.refused is None:
            self.refused = multiprocessing.RawValue("q", 0)

    def dumps(self, obj: Any) -> bytes:
        data = pickle.dumps(obj)
        mac = self.keyed.copy()
        mac.update(data)
        return mac.digest() + data

    def loads(self, frame: bytes) -> Any:
        control = self.controls.get(frame)
        if control is not None:
            return control
        data = frame[MAC_BYTES:]
        mac = self.keyed.copy()
        mac.update(data)
        expected = mac.digest()
        if len(frame) < MAC_BYTES or not hmac.compare_digest(frame[:MAC_BYTES], expected):
            if self.refused is not None:
                self.refused.value += 1
            log.warning("refused an unauthenticated frame of %d bytes (pid %d)", len(frame),
                        os.getpid())
            raise FrameRefusedError(f"unauthenticated frame of {len(frame)} bytes refused")
        return pickle.loads(data)  # noqa: S301 (authenticated: sent by a holder of the cookie)


_authenticator = _FrameAuthenticator()
_tcp.serializer = _authenticator  # the module global both the send and the receive paths read


def set_cookie(cookie: bytes | str) -> None:
    """Use this cookie (bytes, or hex text) for every actor system this process starts or joins."""
    key = bytes.fromhex(cookie) if isinstance(cookie, str) else cookie
    if len(key) < 16:
        raise ValueError("a cookie must be at least 16 bytes (32 hex digits)")
    _authenticator.set_key(key)


def cookie_hex() -> str:
    """This process's cookie as hex, to hand to a node that must join (``PTR_COOKIE``)."""
    _ensure_cookie()
    return _authenticator.key.hex()


def _ensure_cookie() -> None:
    if not _authenticator.key:
        set_cookie(os.environ.get("PTR_COOKIE") or secrets.token_bytes(32))


def frame_codec() -> _FrameAuthenticator:
    """The codec every frame goes through (``dumps``/``loads``), for measuring its cost."""
    return _authenticator


def refused_frames() -> int:
    """Frames refused by this process and every process forked from it since the cookie was set."""
    return int(_authenticator.refused.value) if _authenticator.refused is not None else 0


_ensure_cookie()


def plain_transport() -> None:
    """Thespian's transport as shipped: every interface, unauthenticated pickles. Only for the
    baseline of ``ptr bench runtime``, in a process of its own; never in a system."""
    _ipbase.IPActorAddress.__init__ = _original_address_init
    _tcp.serializer = pickle


# --- linked death -------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def link_to_parent() -> None:
    """In an actor process: die (SIGKILL) when the parent process dies. No-op elsewhere.

    Thespian forks each actor from its parent actor's process (a top-level actor from the admin),
    so the OS parent is the supervisor. If the parent died before the link was made, go now.
    """
    if not multiprocessing.current_process().name.startswith("Actor_"):
        return
    parent = multiprocessing.parent_process()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent.pid:
        os.kill(os.getpid(), signal.SIGKILL)
