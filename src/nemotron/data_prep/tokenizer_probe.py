"""Mixed texts on which a fast encoder must give HF ``tokenizers``' ids before data prep trusts it.

The structural checks in ``rank_table`` cover the algorithm; these texts cover what only running
both libraries shows: the two regex engines' Unicode classes (letters, marks, numbers, spaces of
every script), whitespace runs of every kind and length, code, and added-token text (whole,
adjacent, split by a character, and near misses). ``scale`` repeats the randomised part with more
seeds: 1 is the check at load time (a fraction of a second), the tests use more.
"""

from __future__ import annotations

import random
import sys
import unicodedata

PROSE = (
    "The quick brown fox jumps over the lazy dog. It's 3:45 p.m.; we'll see you're done by 2024-05-06! "
    "Don't they've re-used \"quotes\" and 'single quotes' (parentheses) [brackets] {braces}?\n"
    "Numbers: 0, 12, 345, 6789, 1,234,567.89, 3.14159e-10, -42, +7, 0x1F, 1_000_000.\n"
    "URLs https://example.com/a/b?c=d&e=f#g and e-mails first.last@example.org.\n"
)
CODE = (
    "def f(x: int) -> int:\n    if x <= 0:\n        return -1\n\treturn x ** 2  # square\n\n"
    "for (int i = 0; i < n; ++i) { a[i] += b[i] >> 2; }\r\n"
    '<html><body class="x"><p>Hi &amp; bye</p></body></html>\n'
    "SELECT a, b FROM t WHERE c IN (1, 2) AND d <> 'x';\n"
    "    \n\n\n  \t  x = {'k': [1, 2, 3], \"v\": None}  \n"
)
UNICODE = (
    "Grüße, naïve café, déjà vu, Ærø, Straße. Ελληνικά. Русский текст. עברית. العربية. हिन्दी. বাংলা. "
    "ไทย. 日本語のテキスト、カタカナ。中文文本。한국어 텍스트. Tiếng Việt. ქართული. Հայերեն. ትግርኛ.\n"
    "Emoji 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🧑🏿‍🚀 and combining e\u0301 a\u0308 \u1e9b\u0323; fullwidth ＡＢＣ１２３.\n"
    "Math ∑ ∫ √ ≤ ≥ ≠ ∞ ⊕ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟏𝟐𝟑; digits ٠١٢٣ ०१२ ၀၁၂; roman Ⅻ ⅻ; superscripts ² ³.\n"
    "Spaces: nbsp\u00a0x thin\u2009x em\u2003x ideographic\u3000x zero-width\u200bx bom\ufeffx ls\u2028x ps\u2029x.\n"
)
SPACES = (" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c", "\x85", "\u2028")


def _assigned_chars(stride: int, offset: int) -> list[str]:
    """Every ``stride``-th assigned code point (no surrogates or private use): all scripts and classes."""
    out = []
    for cp in range(0x20 + offset, sys.maxunicode + 1, stride):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if unicodedata.category(chr(cp)) in ("Cn", "Co", "Cs"):
            continue
        out.append(chr(cp))
    return out


def probe_texts(special_tokens: list[str], scale: int = 1) -> list[str]:
    """The probe corpus: fixed prose/code/Unicode, then seeded random mixes (more with ``scale``)."""
    texts = [PROSE, CODE, UNICODE, PROSE + CODE + UNICODE]
    for n in (1, 2, 3, 4, 7, 8, 15, 16, 31, 33, 64, 100):
        for space in SPACES:
            texts.append(f"a{space * n}b{space * n}\n{space * n}")
            texts.append(space * n)
    texts.append(" x" * 200 + "  " * 50 + "\t" * 40)
    specials = sorted(special_tokens)[:64]
    if specials:
        texts.append("".join(specials))
        texts.append(" ".join(specials) + "\n" + "\n".join(specials))
        texts.extend(f"x{tok}y {tok[:-1]} {tok[1:]} <{tok}> {tok}{tok}\n" for tok in specials)
    chars = _assigned_chars(stride=97, offset=0)
    texts.append(" ".join(chars))
    texts.append("".join(chars))
    for seed in range(8 * scale):
        rng = random.Random(seed)
        alphabet = chars + list(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.,;:!?()[]{}<>/\\-_=+*&^%$#@~`\"|"
        )
        parts = []
        for _ in range(200):
            pick = rng.random()
            if pick < 0.3:
                parts.append(rng.choice((PROSE, CODE, UNICODE))[rng.randrange(200) :][: rng.randrange(1, 120)])
            elif pick < 0.55:
                parts.append(rng.choice(SPACES) * rng.randrange(1, 12))
            elif pick < 0.65 and specials:
                parts.append(rng.choice(specials))
            else:
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))))
        texts.append("".join(parts))
    if scale > 1:
        for offset in range(1, min(scale, 97)):
            texts.append(" ".join(_assigned_chars(stride=97, offset=offset)))
    return texts
