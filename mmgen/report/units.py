"""Human units shared by the renderers: counted words, byte sizes, money."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``3.2 MB``."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def money(amount: Decimal, currency: str) -> str:
    """``$1.23`` for USD, ``1.23 EUR`` otherwise (two decimals, rounded half up)."""
    text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
    return f"${text}" if currency.upper() == "USD" else f"{text} {currency}"
