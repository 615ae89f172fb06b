"""Rephrasings of a file's questions, made by fixed rewording rules (offline, instant, the
same every run): the tune job measures rephrased-question F1, calibrates the decline
threshold and trains on them when no validation file with rephrasings was uploaded.

Two rule sets, each giving one variant: the opening is reworded ("How do I" -> "What is the
way to", "Can I" -> "Is it possible to"), and common words are swapped for synonyms
("delete" -> "remove", "cost" -> "price"). A variant that comes out the same as the question
(no rule matched) is replaced by a plain "Could you tell me ..." wrapping, so every question
gets at least one variant that differs from its own words.
"""

from __future__ import annotations

import re

# Openings, tried in order; the first that matches is rewritten (case-insensitive).
OPENINGS = (
    (r"^how do i\b", "What is the way to"),
    (r"^how can i\b", "What should I do to"),
    (r"^how much does\b", "What is the price of"),
    (r"^how many\b", "What number of"),
    (r"^how often\b", "How frequently"),
    (r"^can i\b", "Is it possible to"),
    (r"^is there\b", "Do you have"),
    (r"^do you\b", "Does your service"),
    (r"^what happens\b", "What will happen"),
    (r"^what is\b", "Tell me"),
    (r"^what are\b", "Tell me"),
    (r"^where is\b", "In which place is"),
    (r"^which\b", "What"),
    (r"^when will\b", "At what time will"),
    (r"^why are\b", "For what reason are"),
    (r"^why is\b", "For what reason is"),
)

# Word for word swaps (whole words, case-insensitive; the first letter's case is kept).
SYNONYMS = {
    "create": "set up", "delete": "remove", "reset": "change", "change": "update",
    "account": "profile", "password": "passcode", "cost": "price", "price": "cost",
    "buy": "purchase", "cancel": "end", "get": "obtain", "turn on": "enable",
    "turn off": "disable", "enable": "switch on", "stop": "end", "help": "assist",
    "contact": "reach", "find": "locate", "see": "view", "show": "display",
    "add": "insert", "use": "work with", "make": "set", "sign in": "log in",
    "log in": "sign in", "lost": "misplaced", "phone": "mobile", "picture": "image",
    "image": "picture", "notes": "documents", "note": "document", "restore": "recover",
    "deleted": "removed", "older": "earlier", "limit": "maximum", "maximum": "largest",
    "size": "limit", "plan": "subscription", "plans": "tiers", "subscription": "plan",
    "refund": "money back", "receipt": "proof of payment", "invoice": "bill",
    "upgrade": "move up", "downgrade": "move down", "devices": "gadgets", "device": "gadget",
    "offline": "without internet", "export": "download", "import": "bring in",
    "share": "send", "sharing": "sending", "encrypted": "protected", "stored": "kept",
    "slowly": "slow", "fix": "repair", "start": "open", "members": "people",
    "customer support": "the help desk", "support": "help", "hours": "opening times",
    "discount": "reduced price", "students": "pupils", "charged": "billed",
    "quickly": "fast", "search": "look", "organise": "sort", "organize": "sort",
    "reminder": "alert", "dark mode": "a dark theme", "email": "e-mail",
    "someone": "another person", "people": "users", "offer": "provide",
}

_SYNONYM = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len,
                                               reverse=True)) + r")\b", re.IGNORECASE)


_A_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
_AN_CONSONANT = re.compile(r"\b([Aa])n (?=[b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z])")


def _keep_case(original: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if original[:1].isupper() else replacement


def reword_opening(question: str) -> str:
    """The question with its opening reworded (unchanged when no opening rule matches)."""
    text = question.strip()
    for pattern, replacement in OPENINGS:
        if re.search(pattern, text, re.IGNORECASE):
            return re.sub(pattern, replacement, text, count=1, flags=re.IGNORECASE)
    return text


def swap_synonyms(question: str) -> str:
    """The question with its common words swapped for synonyms. A capitalised word inside
    the sentence is a name ("Acme Cloud Notes", "Plus") and is left as it is."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        if word[:1].isupper() and match.start() > 0:
            return word
        return _keep_case(word, SYNONYMS[word.lower()])

    swapped = _SYNONYM.sub(swap, question.strip())
    swapped = _A_VOWEL.sub(lambda m: m.group(1) + "n ", swapped)
    return _AN_CONSONANT.sub(lambda m: m.group(1) + " ", swapped)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[0-9a-z]+", text.lower()))


def rephrase(question: str, n: int = 2) -> list[str]:
    """Up to n rewordings of the question, each different from it and from each other."""
    original = question.strip()
    both = swap_synonyms(reword_opening(original))
    candidates = [both, swap_synonyms(original), reword_opening(original)]
    found: list[str] = []
    seen = {_norm(original)}
    for candidate in candidates:
        if _norm(candidate) not in seen:
            seen.add(_norm(candidate))
            found.append(candidate)
    if not found:
        body = original.rstrip("?").strip()
        found.append(f"Could you tell me: {body[:1].lower() + body[1:]}?")
    return found[:max(1, n)]
