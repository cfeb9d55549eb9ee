"""What a plan will spend: the tasks a run would create, their estimated cost, the guard.

* :func:`tasks_to_create` — the plan items a run turns into new MiniMax tasks (each is paid for).
* :class:`PriceTable` and :func:`load_prices` — the per-model price table: mmgen's default
  (``mmgen/prices.yaml``, MiniMax's public list prices; estimates) merged with a user's file.
* :func:`estimate` — the estimated cost of those tasks (``plan --format markdown``).
* :func:`enforce_max_tasks` — the spending guard of ``run --max-tasks`` / ``MMGEN_MAX_TASKS``.
* :func:`plan_exit_code` — ``plan --detailed-exitcode``.

Nothing here prints; errors are :class:`~mmgen.errors.UsageError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml
from jsonschema import Draft202012Validator

from mmgen.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from mmgen.state.planning import PlanItem

#: Actions that create a new task (and so cost money) when a run carries them out.
TASK_ACTIONS: Final = frozenset({"submit", "changed"})

#: ``plan --detailed-exitcode`` when the run would do something (0: nothing, 2: bad input).
EXIT_PENDING: Final = 3

DEFAULT_PRICES: Final = "prices.yaml"

_PRICE: Final[dict[str, Any]] = {"type": "number", "minimum": 0}
PRICE_TABLE_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "source": {"type": "string"},
        "as_of": {"description": "when the prices were read; any scalar (a YAML date too)"},
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "price": _PRICE,
                    "prices": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[0-9]+P-[0-9]+s$"},
                        "additionalProperties": _PRICE,
                    },
                    "default_resolution": {"type": "string", "pattern": "^[0-9]+P$"},
                    "default_duration": {"type": "integer", "minimum": 1},
                },
                "anyOf": [{"required": ["price"]}, {"required": ["prices"]}],
            },
        },
    },
}


def tasks_to_create(items: Sequence[PlanItem], *, resubmit_unknown: bool = False) -> list[PlanItem]:
    """The plan items a run would turn into new (paid) tasks: ``submit`` and ``changed``, plus
    ``unknown`` when ``--resubmit-unknown`` is given. ``skip`` and ``resume`` create none."""
    actions = TASK_ACTIONS | ({"unknown"} if resubmit_unknown else set())
    return [item for item in items if item.action in actions]


def plan_exit_code(items: Sequence[PlanItem]) -> int:
    """``plan --detailed-exitcode``: 0 when every job is done (all ``skip``), else 3."""
    return EXIT_OK if all(item.action == "skip" for item in items) else EXIT_PENDING


def enforce_max_tasks(
    items: Sequence[PlanItem], max_tasks: int | None, *, resubmit_unknown: bool = False
) -> int:
    """The spending guard: raise :class:`UsageError` (exit 2) when the run would create more
    than ``max_tasks`` tasks; return how many it creates. ``None`` means no limit."""
    creating = [item.job.name for item in tasks_to_create(items, resubmit_unknown=resubmit_unknown)]
    count = len(creating)
    if max_tasks is not None and count > max_tasks:
        names = ", ".join(creating[:10]) + (f" and {count - 10} more" if count > 10 else "")
        raise UsageError(
            f"this run would create {count} task{'s' if count != 1 else ''} ({names}), "
            f"more than --max-tasks {max_tasks} allows; nothing was submitted",
            hint=f"check them with `mmgen plan`, then run again with --max-tasks {count} "
            f"(or MMGEN_MAX_TASKS={count}), or run fewer job files",
        )
    return count


# --- the price table ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPrice:
    """The price of one task of one model: flat, or per ``RESOLUTION-DURATIONs`` variant."""

    price: Decimal | None = None
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    default_resolution: str | None = None
    default_duration: int | None = None

    def variant(self, body: Mapping[str, Any]) -> str | None:
        """``768P-6s`` for a body (the model's defaults fill what it does not set); None when
        this model is priced flat."""
        if not self.prices:
            return None
        resolution = str(body.get("resolution") or self.default_resolution or "").upper()
        duration = body.get("duration") or self.default_duration
        return f"{resolution}-{duration}s"

    def of(self, body: Mapping[str, Any]) -> Decimal | None:
        variant = self.variant(body)
        if variant is not None and variant in self.prices:
            return self.prices[variant]
        return self.price


@dataclass(frozen=True)
class PriceTable:
    """Estimated prices per model, with where they come from."""

    currency: str
    source: str
    as_of: str
    models: Mapping[str, ModelPrice]
    files: tuple[str, ...] = ()  # override files merged in, for the "where from" line

    def price(self, body: Mapping[str, Any]) -> Decimal | None:
        """The estimated price of one task with this request body; None when unknown."""
        model = self.models.get(str(body.get("model", "")))
        return None if model is None else model.of(body)

    def describe(self, body: Mapping[str, Any]) -> str:
        """The model (and variant) a price applies to, e.g. ``MiniMax-Hailuo-02 768P-6s``."""
        name = str(body.get("model", "?"))
        model = self.models.get(name)
        variant = model.variant(body) if model else None
        return f"{name} {variant}" if variant else name


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _model_price(data: Mapping[str, Any]) -> ModelPrice:
    return ModelPrice(
        price=_decimal(data["price"]) if "price" in data else None,
        prices={str(k): _decimal(v) for k, v in (data.get("prices") or {}).items()},
        default_resolution=data.get("default_resolution"),
        default_duration=data.get("default_duration"),
    )


def _check(data: Any, where: str) -> dict[str, Any]:
    if data is None:
        data = {}
    errors = sorted(
        Draft202012Validator(PRICE_TABLE_SCHEMA).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.path) or '(document)'}: {e.message}" for e in errors
        )
        raise UsageError(f"price table {where}: {problems}")
    assert isinstance(data, dict)
    return data


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"--prices {path}: cannot read it: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UsageError(f"--prices {path}{where}: not valid YAML or JSON") from err
    return _check(data, str(path))


def default_price_data() -> dict[str, Any]:
    """mmgen's own table (``mmgen/prices.yaml``), parsed."""
    text = (resources.files("mmgen") / DEFAULT_PRICES).read_text(encoding="utf-8")
    return _check(yaml.safe_load(text), "mmgen/prices.yaml")


def load_prices(override: Path | None = None) -> PriceTable:
    """The default price table, with ``override`` (a YAML or JSON file of the same format)
    merged in model by model. A file that sets another currency replaces the table's models."""
    data = default_price_data()
    files: tuple[str, ...] = ()
    if override is not None:
        extra = _read(override)
        files = (str(override),)
        currency = extra.get("currency", data["currency"])
        models = {} if currency.upper() != data["currency"].upper() else dict(data["models"])
        models.update(extra.get("models") or {})
        data = {
            "currency": currency,
            "source": extra.get("source", f"{override} and mmgen's defaults"),
            "as_of": extra.get("as_of", data["as_of"] if "source" not in extra else ""),
            "models": models,
        }
    return PriceTable(
        currency=str(data["currency"]).upper(),
        source=str(data.get("source", "")),
        as_of=str(data.get("as_of", "")),
        models={name: _model_price(entry) for name, entry in data["models"].items()},
        files=files,
    )


# --- estimates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """The estimated cost of the tasks a run would create."""

    currency: str
    tasks: int
    total: Decimal  # of the priced tasks
    per_job: Mapping[str, Decimal | None]  # job name -> price (None: no price known)

    @property
    def unpriced(self) -> list[str]:
        return [name for name, price in self.per_job.items() if price is None]


def estimate(
    items: Sequence[PlanItem], table: PriceTable, *, resubmit_unknown: bool = False
) -> Estimate:
    """Price each task the plan would create with ``table``."""
    per_job = {
        item.job.name: table.price(item.job.body)
        for item in tasks_to_create(items, resubmit_unknown=resubmit_unknown)
    }
    total = sum((p for p in per_job.values() if p is not None), Decimal(0))
    return Estimate(currency=table.currency, tasks=len(per_job), total=total, per_job=per_job)
