"""SSL contexts for thor's TLS clients and servers, and how TLS failures are reported.

Theory of operation
-------------------
A client context is built once per configuration (verify or not, CA file, ALPN list) and shared
by every TlsClient of the process that asks for that configuration; it is complete when it leaves
this module and nothing changes it afterwards. thor 0.17 kept one process-wide context and
switched its verification off on every TlsClient construction: any client anywhere could weaken
every other. Here a configuration *selects* a context, it never edits one.

Verification is on unless asked otherwise: ``ssl.create_default_context()`` (the system CA store,
or ``ca_file`` instead), host-name checking, TLS 1.2 at least, no renegotiation. Turning it off is
explicit (``verify=False``, or ``TlsClient.verify_certificates = False``) and logged once per
process at WARNING on the ``thor.tls`` logger when a connection first uses such a context.

Server contexts belong to their TlsServer (built by it once, at construction, from a certificate
file or taken as given) and are not shared.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from collections.abc import Sequence

__all__ = ["client_context", "describe_failure", "server_context", "warn_if_unverified"]

logger = logging.getLogger("thor.tls")

#: Contexts built by ``client_context``, by configuration.
_client_contexts: dict[tuple[bool, str | None, tuple[str, ...]], ssl.SSLContext] = {}
_lock = threading.Lock()
#: Set once the "verification is off" warning has been logged (once per process).
_warned_unverified = False

_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0)
_SOURCE_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def client_context(
    verify: bool = True,
    ca_file: str | os.PathLike[str] | None = None,
    alpn_protocols: Sequence[str] | None = None,
) -> ssl.SSLContext:
    """The shared client context for this configuration (built on first use).

    The context returned is shared: do not modify it (pass your own context to TlsClient to
    configure anything else).

    Args:
        verify: check the certificate chain and the host name (True), or accept any
            certificate (False: thor 0.17's behaviour).
        ca_file: PEM file of the certificate authorities to trust instead of the system store
            (read once per process); ignored when ``verify`` is False.
        alpn_protocols: the ALPN protocols to offer, preferred first (e.g. ``["h2", "http/1.1"]``).

    Raises:
        OSError, ssl.SSLError: ``ca_file`` cannot be read or holds no certificate.
        ValueError: an ALPN protocol name is empty or too long.
    """
    key = (
        bool(verify),
        os.fspath(ca_file) if ca_file is not None and verify else None,
        tuple(alpn_protocols or ()),
    )
    context = _client_contexts.get(key)
    if context is not None:
        return context
    with _lock:
        context = _client_contexts.get(key)
        if context is None:
            context = _build_client_context(*key)
            _client_contexts[key] = context
    return context


def _build_client_context(
    verify: bool, ca_file: str | None, alpn: tuple[str, ...]
) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context(cafile=ca_file)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _harden(context)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    password: str | bytes | None = None,
    alpn_protocols: Sequence[str] | None = None,
) -> ssl.SSLContext:
    """A new server context with this certificate chain and key (TLS 1.2 at least).

    Args:
        certfile: PEM file with the certificate chain (and the key, if ``keyfile`` is None).
        keyfile: PEM file with the private key.
        password: the key's password, if it is encrypted.
        alpn_protocols: the ALPN protocols to accept, preferred first; the first one the client
            also offers is chosen (none: ALPN is not negotiated).

    Raises:
        OSError, ssl.SSLError: the files cannot be read, or the key does not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    context.load_cert_chain(certfile, keyfile, password)
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    return context


def _harden(context: ssl.SSLContext) -> None:
    floor = context.minimum_version
    if floor == ssl.TLSVersion.MINIMUM_SUPPORTED or (
        floor != ssl.TLSVersion.MAXIMUM_SUPPORTED and floor < ssl.TLSVersion.TLSv1_2
    ):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    # renegotiation would let a read need a write (and a write a read) in the middle of a stream
    context.options |= _NO_RENEGOTIATION


def verifies(context: ssl.SSLContext) -> bool:
    """Whether a client using ``context`` checks both the chain and the host name."""
    return context.verify_mode != ssl.CERT_NONE and context.check_hostname


def warn_if_unverified(context: ssl.SSLContext) -> None:
    """Log, once per process, that certificates are not verified, if ``context`` does not."""
    global _warned_unverified
    if not _warned_unverified and not verifies(context):
        _warned_unverified = True
        logger.warning(
            "TLS certificate verification is OFF (verify=False or "
            "TlsClient.verify_certificates = False): connections accept any certificate and "
            "are open to interception"
        )


def describe_failure(exc: BaseException) -> tuple[str, int, str]:
    """``(err_type, err_id, err_str)`` for a failed TLS handshake, as ``'connect_error'`` has it.

    Certificate problems give ``("ssl", <X.509 verify code>, "certificate verify failed: ...")``
    (e.g. 62 for a host-name mismatch, 10 for an expired certificate); other TLS failures
    ``("ssl", <SSL error number>, ...)``; socket failures (a reset, a timeout) ``("socket",
    errno, ...)``.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or _clean(exc)
        return "ssl", exc.verify_code or exc.errno or 0, f"certificate verify failed: {message}"
    if isinstance(exc, ssl.SSLEOFError):
        return "ssl", exc.errno or 0, "the peer closed the connection during the TLS handshake"
    if isinstance(exc, ssl.SSLError):
        return "ssl", exc.errno or 0, f"TLS handshake failed: {_clean(exc)}"
    if isinstance(exc, OSError):
        return "socket", exc.errno or 0, exc.strerror or str(exc) or type(exc).__name__
    return "ssl", 0, f"TLS handshake failed: {exc}"


def _clean(exc: OSError) -> str:
    """The OpenSSL message without CPython's source location."""
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    return _SOURCE_SUFFIX.sub("", text)
