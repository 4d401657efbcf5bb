"""RSIT classification from the names partners actually use.

Feeds name incident classes and types in many ways: IntelMQ's older harmonisation
(`malicious code`, `botnet drone`, `c2server`), eCSIRT.net's original taxonomy, free words in
CSV feeds. `classify` maps them onto the RSIT class and type the router matches on, and refuses
what it cannot place rather than guessing a class that would route the alert to the wrong
members.
"""

from __future__ import annotations

from pipeline.alert import RSIT
from pipeline.rejected import Rejected

#: Each RSIT type belongs to exactly one class, so a type alone names its class.
CLASS_OF_TYPE = {kind: klass for klass, kinds in RSIT.items() for kind in kinds}

CLASS_ALIASES = {
    "abusive content": "abusive-content",
    "malicious code": "malicious-code",
    "malware": "malicious-code",
    "information gathering": "information-gathering",
    "intrusion attempts": "intrusion-attempts",
    "availability": "availability",
    "information content security": "information-content-security",
    "information security": "information-content-security",
    "vulnerable": "vulnerable",
    "vulnerability": "vulnerable",
}

#: Older and informal type names -> RSIT type (IntelMQ's harmonisation before 3.0, eCSIRT.net).
TYPE_ALIASES = {
    "botnet drone": "infected-system",
    "bot": "infected-system",
    "infected system": "infected-system",
    "ransomware": "infected-system",
    "malware": "infected-system",
    "c2server": "c2-server",
    "c&c": "c2-server",
    "c2": "c2-server",
    "malware distribution": "malware-distribution",
    "malware-configuration": "malware-configuration",
    "scanner": "scanner",
    "scanning": "scanner",
    "brute-force": "brute-force",
    "bruteforce": "brute-force",
    "brute force": "brute-force",
    "exploit": "exploit",
    "ids alert": "ids-alert",
    "vulnerable service": "vulnerable-system",
    "vulnerable-service": "vulnerable-system",
    "vulnerable client": "vulnerable-system",
    "compromised": "system-compromise",
    "defacement": "application-compromise",
    "backdoor": "system-compromise",
    "leak": "data-leak",
    "dropzone": "data-leak",
    "spam": "spam",
    "phishing": "phishing",
    "proxy": "potentially-unwanted-accessible",
    "open proxy": "potentially-unwanted-accessible",
    "amplifier": "ddos-amplifier",
    "ddos amplifier": "ddos-amplifier",
    "blacklist": "undetermined",
    "blocklist": "undetermined",
    "unknown": "undetermined",
    "dga domain": "undetermined",
    "dga-domain": "undetermined",
    "tor": "undetermined",
    "other": "undetermined",
}


def _key(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").split())


def classify(taxonomy: str | None, kind: str | None, field: str = "type") -> tuple[str, str]:
    """The RSIT (class, type) for a class and type as a feed names them; either may be missing
    when the other determines it. Raises Rejected when the pair cannot be placed."""
    klass = _key(taxonomy) if taxonomy else ""
    name = _key(kind) if kind else ""
    klass = CLASS_ALIASES.get(klass, klass.replace(" ", "-"))
    if name:
        dashed = name.replace(" ", "-")
        resolved = dashed if dashed in CLASS_OF_TYPE else TYPE_ALIASES.get(name, TYPE_ALIASES.get(dashed))
        if resolved is None:
            raise Rejected(field, f"{kind[:48]!r} is not an RSIT type or a known alias of one")  # type: ignore[index]
        if klass in RSIT and resolved in RSIT[klass]:
            return klass, resolved
        if klass in RSIT and resolved == "undetermined":
            return "other", "undetermined"
        return CLASS_OF_TYPE[resolved], resolved
    if klass in RSIT:
        defaults = {"other": "undetermined", "test": "test"}
        if klass in defaults:
            return klass, defaults[klass]
        raise Rejected(field, f"class {klass} given without a type")
    if klass:
        raise Rejected("taxonomy", f"{taxonomy[:48]!r} is not an RSIT class")  # type: ignore[index]
    raise Rejected(field, "no classification given and the feed declares none")
