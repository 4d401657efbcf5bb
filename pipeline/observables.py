"""Observables in canonical form: IP addresses, domains, URLs, e-mail addresses, hashes, CVEs.

Every value that reaches an alert goes through here, whatever the format it came in, so a
domain is matched against a member's constituency the same way whether a STIX bundle, a CSV
feed or a CEF line carried it. Defanged values (`hxxp://evil[.]example`) are refanged first:
CERT feeds defang indicators so that nobody clicks them, and a defanged indicator that is not
recognised is an indicator that nobody blocks.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

import idna

from pipeline.rejected import Rejected

#: Indicator kinds the pipeline understands; any other kind is refused.
INDICATOR_KINDS = ("ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "sha512", "asn", "cve")
_HASH_HEX = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DEFANGS = (
    (re.compile(r"^(h[xX]{2}p)(s?)", re.IGNORECASE), r"http\2"),
    (re.compile(r"^fxp", re.IGNORECASE), "ftp"),
    (re.compile(r"\[\s*\.\s*\]|\(\s*\.\s*\)|\{\s*\.\s*\}|\[dot\]|\(dot\)", re.IGNORECASE), "."),
    (re.compile(r"\[\s*:\s*\]"), ":"),
    (re.compile(r"\[\s*/\s*\]"), "/"),
    (re.compile(r"\[://\]"), "://"),
    (re.compile(r"\[at\]|\(at\)|\[@\]", re.IGNORECASE), "@"),
)


def digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (str.isdigit also accepts "²", which int() refuses)."""
    return text.isascii() and text.isdigit()


def refang(text: str) -> str:
    """Undo the usual defanging: `hxxp`, `[.]`, `(.)`, `[dot]`, `[:]`, `[://]`, `[at]`."""
    if "[" not in text and "(" not in text and "{" not in text and text[:1].lower() not in "hf":
        return text
    for pattern, replacement in _DEFANGS:
        text = pattern.sub(replacement, text)
    return text


def canonical_ip(value: str, field: str) -> str:
    """The canonical text of an IPv4 or IPv6 address (IPv6 compressed, lower case)."""
    try:
        return str(ipaddress.ip_address(refang(value.strip())))
    except ValueError as exc:
        raise Rejected(field, f"not an IP address: {value[:64]!r}") from exc


def canonical_domain(value: str, field: str) -> str:
    """A domain name in lower case IDNA (punycode) form, without the trailing dot."""
    name = refang(value.strip()).rstrip(".").lower()
    if not name or len(name) > 253:
        raise Rejected(field, f"not a domain name: {value[:64]!r}")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise Rejected(field, f"not a valid internationalised domain name: {value[:64]!r}") from exc
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise Rejected(field, f"not a domain name: {value[:64]!r}")
    return name


def canonical_url(value: str, field: str) -> str:
    """A URL with its scheme and host in canonical form; path and query are kept as sent."""
    text = refang(value.strip())
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise Rejected(field, f"not a URL: {value[:64]!r}") from exc
    if not parts.scheme or not host or not parts.scheme.isascii():
        raise Rejected(field, f"not an absolute URL: {value[:64]!r}")
    try:
        host = canonical_ip(host, field)
        host = f"[{host}]" if ":" in host else host
    except Rejected:
        host = canonical_domain(host, field)
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def url_host(url: str) -> str | None:
    """The host part of a canonical URL (a domain or an IP address), if any."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host or None


def canonical_email(value: str, field: str) -> str:
    local, at, domain = refang(value.strip()).rpartition("@")
    if not at or not local or len(local) > 64 or any(c.isspace() for c in local):
        raise Rejected(field, f"not an e-mail address: {value[:64]!r}")
    return f"{local}@{canonical_domain(domain, field)}"


def canonical_hash(kind: str, value: str, field: str) -> str:
    text = value.strip().lower()
    if len(text) != _HASH_HEX[kind] or any(c not in "0123456789abcdef" for c in text):
        raise Rejected(field, f"not a {kind} hash ({_HASH_HEX[kind]} hex digits): {value[:80]!r}")
    return text


def canonical_asn(value: str, field: str) -> str:
    text = value.strip().upper().removeprefix("AS")
    if not digits(text) or not 1 <= int(text) <= 4_294_967_295:
        raise Rejected(field, f"not an AS number: {value[:32]!r}")
    return str(int(text))


def indicator(kind: str, value: str, field: str = "indicators") -> dict[str, str]:
    """One indicator `{type, value}` with its value canonicalised; `ip` becomes ipv4 or ipv6."""
    kind = kind.strip().lower()
    if not isinstance(value, str):
        raise Rejected(f"{field}.value", f"expected a string, got {type(value).__name__}")
    where = f"{field}.value"
    if kind in ("ip", "ipv4", "ipv6"):
        text = canonical_ip(value, where)
        family = "ipv6" if ":" in text else "ipv4"
        if kind != "ip" and kind != family:
            raise Rejected(where, f"{value[:64]!r} is an {family} address, not {kind}")
        return {"type": family, "value": text}
    if kind == "domain":
        return {"type": kind, "value": canonical_domain(value, where)}
    if kind == "url":
        return {"type": kind, "value": canonical_url(value, where)}
    if kind == "email":
        return {"type": kind, "value": canonical_email(value, where)}
    if kind in _HASH_HEX:
        return {"type": kind, "value": canonical_hash(kind, value, where)}
    if kind == "asn":
        return {"type": kind, "value": canonical_asn(value, where)}
    if kind == "cve":
        text = value.strip().upper()
        if not _CVE.match(text):
            raise Rejected(where, f"not a CVE id: {value[:32]!r}")
        return {"type": kind, "value": text}
    known = ", ".join(INDICATOR_KINDS)
    raise Rejected(f"{field}.type", f"unknown indicator type {kind[:32]!r}; known: {known}")
