"""Protocol cards as comparisons read them: flattened to dotted keys, and with each judge's
transport parameters (server address, retry patience) left out, since the harness's own caches and
run identity ignore them too. The comparison report and the gate both judge comparability here."""
from __future__ import annotations

import json
from typing import Any

from harness import registry


def flatten(values: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys; each leaf as its JSON text, so types show (5 vs 5.0 vs "5")."""
    if isinstance(values, dict) and values:
        flat: dict[str, str] = {}
        for key, value in values.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(values, sort_keys=True, ensure_ascii=False)}


def comparable_card(protocol: dict[str, Any]) -> dict[str, Any]:
    """The card with every judge's ``transport_params`` removed."""
    try:
        kinds = registry.get("benchmark", protocol.get("benchmark", "")).judge_roles
    except registry.UnknownPluginError:
        kinds = {}  # judges compared as written
    judges = {}
    for role, judge in (protocol.get("judges") or {}).items():
        try:
            transport = set(getattr(registry.get(kinds[role], judge["name"]), "transport_params", ()))
        except (KeyError, TypeError, registry.UnknownPluginError):
            transport = set()
        params = {k: v for k, v in (judge.get("params") or {}).items() if k not in transport}
        judges[role] = {**judge, "params": params}
    return {**protocol, "judges": judges}


def protocol_parts(protocol: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The card in three flattened parts: benchmark (data, rules, options, limit), judges, and the
    model (its card and the run seed: another seed draws other samples of the same model)."""
    card = comparable_card(protocol)
    benchmark = {k: v for k, v in card.items() if k not in ("model", "judges", "run_seed")}
    model = {"model": card.get("model", {}), "run_seed": card.get("run_seed")}
    return {"benchmark": flatten(benchmark), "judges": flatten(card.get("judges", {}), "judges."),
            "model": flatten(model)}


def official_departures(protocol: dict[str, Any]) -> list[str]:
    """Why a run is not the official setup behind published numbers (empty: it is): a ``limit``
    (only the first items were evaluated), then the benchmark's own reasons."""
    reasons = []
    if protocol.get("limit") is not None:
        reasons.append(f"limit {protocol['limit']}: only the first items were evaluated")
    benchmark = registry.get("benchmark", protocol.get("benchmark", ""))
    return reasons + list(benchmark.departures_from_official(protocol))
