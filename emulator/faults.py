"""Fault injection for the emulated Storage API: scripted or seeded-random faults per endpoint.

The HTTP layer calls ``FaultInjector.match(method, path)`` once per request and acts on the returned ``Fault``:

- ``status``: answer ``fault.status`` (500/502/503/429) with ``fault.body()`` and ``fault.headers()``
  (``Retry-After`` for 503/429);
- ``reset``: abort the connection without a response;
- ``slow``: sleep ``fault.delay`` seconds, then handle the request normally;
- ``job_error``: handle the request normally, the job it creates ends in error with ``fault.code``/``fault.message``
  (the server sets ``JOB_ERROR`` for the request; the models read it with ``injected_job_error()`` when they
  create the job, so no model method carries a test-harness argument).

A ``status`` (5xx) or ``reset`` fault with ``late=True`` fires *after* the request was handled: the server acted
(created the job, stored the file) but the client gets the error or a reset instead of the answer, as when a load
balancer times out or a connection drops on the way back. Without it a fault never has a side effect, and a client
that blindly replays non-idempotent POSTs would look correct.

A ``FaultRule`` selects requests with an ``fnmatch`` glob on ``"METHOD /path"`` (``"POST /v2/storage/tables/*/import-async"``,
``"*"``) and fires either scripted (``after`` matching calls pass, then the next ``times`` fire) or at random
(``probability`` per matching call, drawn from the injector's one seeded RNG). Rules are evaluated in the order they
were added; every matching rule counts the call, the first one that fires wins. Same seed + same request sequence
=> same faults.
"""

from __future__ import annotations

import fnmatch
import json
import os
import random as _random
import threading
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import new_exception_id

KINDS = ("status", "reset", "slow", "job_error")
STATUSES = (500, 502, 503, 429)
RANDOM_KINDS = ("500", "502", "503", "429", "reset")  # default kinds of FaultInjector.random
LATE_KINDS = ("late-500", "late-502", "late-reset")  # random kinds whose request was handled before the fault
DEFAULT_JOB_ERROR_CODE = "storage.jobs.error"

JOB_ERROR: ContextVar[tuple[str, str] | None] = ContextVar("emulator_job_error", default=None)
"""``(code, message)`` of a ``job_error`` fault injected into the request being handled, else None."""


def injected_job_error() -> tuple[str, str] | None:
    return JOB_ERROR.get()


_STATUS_ERRORS = {
    # status: (code, message); 500 mirrors errors.ApplicationError
    500: (
        "APPLICATION_ERROR",
        (
            "Application error. Please contact our support support@keboola.com with following exception id ({id}) "
            "and we will investigate the problem."
        ),
    ),
    502: ("badGateway", "Bad Gateway"),
    503: ("serviceUnavailable", "Service Unavailable"),
    429: ("tooManyRequests", "Too Many Requests"),
}


class FaultBody(dict):
    """The error body of a status fault. Callable (returns itself) so ``fault.body`` and ``fault.body()`` agree."""

    def __call__(self) -> FaultBody:
        return self


@dataclass
class Fault:
    kind: str
    status: int | None = None  # status: 500 (default) / 502 / 503 / 429 (any 4xx/5xx accepted)
    retry_after: int | None = None  # seconds; defaults to 1 for 503 and 429, no header for other statuses
    delay: float = 1.0  # slow: seconds before the normal response
    code: str | None = None  # job_error: job.error.code (default storage.jobs.error); status: body code
    message: str | None = None  # job_error: job.error.message; status: body error message
    maintenance: bool = False  # 503 with the maintenance body {"status": "maintenance", ...}
    late: bool = False  # status (5xx) / reset: handle the request first, then lose the response

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'Unknown fault kind "{self.kind}"; expected one of: {", ".join(KINDS)}')
        if self.kind == "status":
            if self.status is None:
                self.status = 500
            if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
                raise ValueError(f"Fault status must be an HTTP error status (400-599), got {self.status!r}")
            if self.retry_after is None and self.status in (503, 429):
                self.retry_after = 1
            if self.maintenance and self.status != 503:
                raise ValueError("A maintenance fault must have status 503")
        elif self.status is not None:
            raise ValueError(f'Fault kind "{self.kind}" takes no status')
        if self.late and not (self.kind == "reset" or (self.kind == "status" and self.status >= 500)):
            raise ValueError("Only reset and 5xx status faults can be late (the request is handled first)")
        if self.late and self.kind == "status" and self.status in (503, 429):
            raise ValueError("A late fault cannot be 503/429: those statuses say the request was not handled")
        retry_after = self.retry_after
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(f"Fault retry_after must be a non-negative integer, got {self.retry_after!r}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, int | float) or self.delay < 0:
            raise ValueError(f"Fault delay must be a non-negative number of seconds, got {self.delay!r}")
        if self.kind == "job_error":
            self.code = self.code or DEFAULT_JOB_ERROR_CODE
            self.message = self.message or f"Injected job failure ({self.code})"

    @property
    def body(self) -> FaultBody:
        """Error body of a status fault, with a fresh exception id (``fault.body()`` works as well)."""
        if self.maintenance:
            end = datetime.now(UTC) + timedelta(seconds=self.retry_after or 0)
            return FaultBody(
                status="maintenance",
                reason=self.message or "Scheduled maintenance",
                estimatedEndTime=end.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
        exception_id = new_exception_id()
        code, message = _STATUS_ERRORS.get(self.status or 500, ("", "Injected fault"))
        message = (self.message or message).replace("{id}", exception_id)
        return FaultBody(error=message, code=self.code if self.code is not None else code, exceptionId=exception_id)

    def headers(self) -> dict[str, str]:
        """Response headers of a status fault (``Retry-After`` when set)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    @property
    def label(self) -> str:
        """Short name for reports: "503", "reset", "slow", "job_error", "late-502", "late-reset"."""
        name = str(self.status) if self.kind == "status" else self.kind
        return f"late-{name}" if self.late else name

    @classmethod
    def from_kind(cls, kind: str | int, **params) -> Fault:
        """``"500"``/``500``/... -> a status fault; ``"reset"``/``"slow"``/``"job_error"``/``"status"`` -> that kind."""
        name = str(kind)
        if name.isdigit():
            return cls(kind="status", status=int(name), **params)
        return cls(kind=name, **params)


@dataclass
class FaultRule:
    endpoint: str  # fnmatch glob on "METHOD /path"
    fault: Fault | None = None
    times: int | None = None  # fire on the next N eligible calls, then retire (None: no limit)
    after: int = 0  # the first N matching calls pass
    probability: float | None = None  # fire with this probability (seeded RNG); None: always
    choices: tuple[Fault, ...] = ()  # instead of `fault`: one picked uniformly (seeded RNG) each time it fires
    seen: int = field(default=0, init=False)  # matching calls counted by this rule
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, str) or not self.endpoint.strip():
            raise ValueError("Fault rule endpoint must be a non-empty glob such as 'GET /v2/storage/jobs/*' or '*'")
        self.choices = tuple(self.choices)
        if (self.fault is None) == (not self.choices):
            raise ValueError("Fault rule needs exactly one of `fault` or `choices`")
        for fault in (self.fault, *self.choices):
            if fault is not None and not isinstance(fault, Fault):
                raise ValueError(f"Fault rule fault must be a Fault, got {type(fault).__name__}")
        if self.times is not None and (
            isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 1
        ):
            raise ValueError(f"Fault rule times must be a positive integer or null, got {self.times!r}")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError(f"Fault rule after must be a non-negative integer, got {self.after!r}")
        if self.probability is not None:
            p = self.probability
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                raise ValueError(f"Fault rule probability must be between 0 and 1, got {p!r}")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, request_line: str) -> bool:
        return fnmatch.fnmatchcase(request_line, self.endpoint)


@dataclass(frozen=True)
class InjectedFault:
    """One fired fault, for reports."""

    seq: int  # index of the request among all match() calls (0-based)
    method: str
    path: str
    endpoint: str  # the rule's glob
    kind: str
    status: int | None
    at: str  # ISO-8601 time
    late: bool = False


class FaultInjector:
    """Thread-safe set of fault rules sharing one seeded RNG."""

    def __init__(self, seed: int | None = None):
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "big")  # kept, so a random run can be reproduced
        self.seed = seed
        self._rng = _random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._counts: Counter[str] = Counter()
        self.log: list[InjectedFault] = []
        self.requests = 0  # match() calls

    # rules -----------------------------------------------------------------------------------------------------
    def add(self, rule: FaultRule | str, fault: Fault | None = None, **params) -> FaultRule:
        """Add a rule: ``add(FaultRule(...))``, or ``add("GET /v2/storage/jobs/*", kind="status", status=503,
        retry_after=2, times=1)`` (rule keywords ``times``/``after``/``probability``, the rest builds the Fault)."""
        if not isinstance(rule, FaultRule):
            rule_params = {k: params.pop(k) for k in ("times", "after", "probability") if k in params}
            if fault is None:
                if "kind" not in params:
                    raise ValueError("add(endpoint, ...) needs a Fault or kind=...")
                fault = Fault(**params)
            elif params:
                raise ValueError(f"Unexpected arguments with a Fault: {', '.join(sorted(params))}")
            rule = FaultRule(endpoint=rule, fault=fault, **rule_params)
        elif fault is not None or params:
            raise ValueError("add(FaultRule) takes no further arguments")
        with self._lock:
            self._rules.append(rule)
        return rule

    def random(
        self,
        rate: float,
        kinds=RANDOM_KINDS,
        endpoint: str = "*",
        retry_after: int = 1,
        delay: float = 1.0,
        code: str | None = None,
    ) -> FaultRule:
        """Fire on each matching request with probability ``rate``, a kind picked uniformly from ``kinds``
        ("500", "502", "503", "429", "reset", "slow", "job_error", and "late-500"/"late-502"/"late-reset":
        the request is handled, then the response is lost)."""
        kinds = [kinds] if isinstance(kinds, str | int) else list(kinds)
        if not kinds:
            raise ValueError("random faults need at least one kind")
        choices = []
        for kind in kinds:
            name = str(kind)
            late = name.startswith("late-")
            if late:
                name = name.removeprefix("late-")
                if name != "reset" and not (name.isdigit() and int(name) >= 500 and int(name) not in (503,)):
                    raise ValueError(f'Random fault kind "{kind}": only late-5xx (not 503) and late-reset exist')
            if late:
                choices.append(
                    Fault(kind="status", status=int(name), late=True)
                    if name.isdigit()
                    else Fault(kind="reset", late=True)
                )
            elif name.isdigit():
                status = int(name)
                choices.append(
                    Fault(kind="status", status=status, retry_after=retry_after if status in (503, 429) else None)
                )
            elif name == "slow":
                choices.append(Fault(kind="slow", delay=delay))
            elif name == "job_error":
                choices.append(Fault(kind="job_error", code=code))
            elif name == "reset":
                choices.append(Fault(kind="reset"))
            else:
                raise ValueError(
                    f'Unknown random fault kind "{name}"; expected a status (500, 502, 503, 429), '
                    '"reset", "slow" or "job_error"'
                )
        return self.add(FaultRule(endpoint=endpoint, choices=tuple(choices), probability=rate))

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed`` (one seed per run of a campaign)."""
        with self._lock:
            self.seed = seed
            self._rng = _random.Random(seed)

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        """Remove all rules (counters and log are kept; see ``reset_counters``)."""
        with self._lock:
            self._rules = []

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.clear()
            self.log = []
            self.requests = 0

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    # per request -----------------------------------------------------------------------------------------------
    def match(self, method: str, path: str) -> Fault | None:
        """The fault to inject into this request, or None. Call exactly once per HTTP request."""
        path = path.split("?", 1)[0]
        request_line = f"{method.upper()} {path}"
        with self._lock:
            seq = self.requests
            self.requests += 1
            chosen: Fault | None = None
            chosen_rule: FaultRule | None = None
            for rule in self._rules:
                if not rule.matches(request_line):
                    continue
                rule.seen += 1
                if chosen is not None or rule.seen <= rule.after or rule.exhausted:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                chosen = rule.fault if rule.fault is not None else self._rng.choice(rule.choices)
                chosen_rule = rule
            if chosen is None:
                return None
            self._rules = [r for r in self._rules if not r.exhausted]
            self._counts[chosen.kind] += 1
            self._counts["total"] += 1
            self.log.append(
                InjectedFault(
                    seq=seq,
                    method=method.upper(),
                    path=path,
                    endpoint=chosen_rule.endpoint,
                    kind=chosen.kind,
                    status=chosen.status,
                    at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                    late=chosen.late,
                )
            )
            return chosen

    # reports ---------------------------------------------------------------------------------------------------
    @property
    def injected(self) -> dict[str, int]:
        """Counts of fired faults: ``total`` and one key per kind (status, reset, slow, job_error)."""
        with self._lock:
            counts = {kind: self._counts.get(kind, 0) for kind in KINDS}
            counts["total"] = self._counts.get("total", 0)
            return counts

    def report(self) -> dict:
        """Summary for reports: seed, requests seen, counts by kind and by label (500/503/reset/...)."""
        with self._lock:
            by_label = Counter(
                ("late-" if e.late else "") + (str(e.status) if e.kind == "status" else e.kind) for e in self.log
            )
            return {
                "seed": self.seed,
                "requests": self.requests,
                "injected": {kind: self._counts.get(kind, 0) for kind in KINDS} | {"total": self._counts["total"]},
                "by_label": dict(sorted(by_label.items())),
            }

    # construction from a CLI flag ------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: str | Path | dict, seed: int | None = None) -> FaultInjector:
        """Build an injector from a JSON string, a path to a JSON file, or an already parsed dict::

            {"seed": 7,
             "random": {"rate": 0.1, "kinds": ["500", "503", "reset"], "endpoint": "*", "retry_after": 1},
             "rules": [{"endpoint": "POST /v2/storage/tables/*/import-async", "kind": "status", "status": 503,
                        "retry_after": 2, "times": 1, "after": 0, "probability": null}]}

        ``seed`` is used when the spec has none. Invalid specs raise ValueError.
        """
        data = _load_spec(spec)
        unknown = set(data) - {"seed", "random", "rules"}
        if unknown:
            raise ValueError(f"Fault spec: unknown keys {sorted(unknown)}; expected seed, random, rules")
        spec_seed = data.get("seed")
        if spec_seed is not None and (isinstance(spec_seed, bool) or not isinstance(spec_seed, int)):
            raise ValueError(f"Fault spec: seed must be an integer, got {spec_seed!r}")
        injector = cls(seed=spec_seed if spec_seed is not None else seed)
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise ValueError("Fault spec: rules must be a list of objects")  # noqa: TRY004 - the CLI contract: every bad spec is a ValueError
        for index, item in enumerate(rules):
            try:
                injector.add(_rule_from_dict(item))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"Fault spec: rules[{index}]: {exc}") from None
        rnd = data.get("random")
        if rnd is not None:
            if not isinstance(rnd, dict):
                raise ValueError("Fault spec: random must be an object like {'rate': 0.1}")
            allowed = {"rate", "kinds", "endpoint", "retry_after", "delay", "code"}
            if set(rnd) - allowed:
                raise ValueError(f"Fault spec: random: unknown keys {sorted(set(rnd) - allowed)}")
            if "rate" not in rnd:
                raise ValueError("Fault spec: random needs a rate (0..1)")
            try:
                injector.random(**{"kinds": RANDOM_KINDS, **rnd})
            except (ValueError, TypeError) as exc:
                raise ValueError(f"Fault spec: random: {exc}") from None
        return injector


_RULE_KEYS = {"endpoint", "times", "after", "probability"}
_FAULT_KEYS = {"kind", "status", "retry_after", "delay", "code", "message", "maintenance", "late"}


def _rule_from_dict(item) -> FaultRule:
    if not isinstance(item, dict):
        raise ValueError("a rule must be an object")  # noqa: TRY004 - the CLI contract: every bad spec is a ValueError
    unknown = set(item) - _RULE_KEYS - _FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if "endpoint" not in item or "kind" not in item:
        raise ValueError("a rule needs endpoint and kind")
    fault_params = {k: item[k] for k in _FAULT_KEYS & set(item) if k != "kind"}
    fault = Fault.from_kind(item["kind"], **fault_params)
    return FaultRule(fault=fault, **{k: item[k] for k in _RULE_KEYS & set(item)})


def _load_spec(spec) -> dict:
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, Path):
        text, source = _read_spec_file(spec), str(spec)
    elif isinstance(spec, str):
        if spec.lstrip().startswith("{"):
            text, source = spec, "the JSON string"
        else:
            text, source = _read_spec_file(Path(spec)), spec
    else:
        raise ValueError(f"Fault spec must be a JSON string or a path to a JSON file, got {type(spec).__name__}")  # noqa: TRY004 - the CLI contract: every bad spec is a ValueError
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Fault spec: {source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"Fault spec: {source} must contain a JSON object")  # noqa: TRY004 - the CLI contract: every bad spec is a ValueError
    return data


def _read_spec_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f'Fault spec "{path}" is neither a JSON object nor a readable file: {exc.strerror or exc}'
        ) from None
