"""The experiment in the URL: read query parameters safely, write them back.

Everything that arrives from a browser is checked here before any other code
sees it. A value that cannot be used (malformed, out of range, an unknown
choice, a dataset path outside the uploads folder) is reported in one sentence
and replaced by the default for that field; no file is read on the way.

This module does not import Streamlit: pages pass `st.query_params` in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from playground.settings import parse_bool
from playground.data.catalog import CATALOG, is_named_dataset
from playground.spec.experiment import ExperimentSpec, SpecError, field_names, get_value
from playground.spec.presets import apply_preset
from playground.spec.validation import check

CLASSROOM_KEY = "classroom"  # ?classroom=1 hides the advanced controls


@dataclass(frozen=True)
class UrlState:
    """What a page's URL asked for."""

    spec: ExperimentSpec  # every field valid on its own (combinations are checked by spec.check)
    messages: tuple[str, ...]  # one sentence per value that was not used
    classroom: bool  # hide advanced controls


def _last(value: Any) -> Any:
    # Repeated keys: the last one wins, as browsers do.
    if isinstance(value, (list, tuple)):
        return value[-1] if value else ""
    return value


def safe_dataset(value: str, uploads_dir: Path) -> str | None:
    """The dataset a browser may name: a named dataset, or an existing file or folder under `uploads_dir`.

    Args:
        value: the requested dataset (a name, or a path absolute or relative to `uploads_dir`).
        uploads_dir: the only folder whose contents a browser may name.

    Returns:
        The name, or the resolved path as text; None when the request is not allowed.
    """
    if is_named_dataset(value):
        return value
    if not value or "\x00" in value or len(value) > 1000:
        return None
    root = uploads_dir.expanduser().resolve()
    candidate = Path(value).expanduser()
    candidate = (candidate if candidate.is_absolute() else root / candidate).resolve()
    # The containment test comes first, so a path outside the folder is never touched.
    if candidate == root or not candidate.is_relative_to(root) or not candidate.exists():
        return None
    return str(candidate)


def read_url(params: Mapping[str, Any], *, uploads_dir: Path, default: ExperimentSpec | None = None) -> UrlState:
    """Turn query parameters into a spec, keeping every usable value and explaining the rest.

    Args:
        params: the query parameters (values may be strings or lists of strings).
        uploads_dir: where uploaded datasets live (`settings.uploads_dir`).
        default: the spec that supplies missing and rejected fields.

    Returns:
        The UrlState.
    """
    default = default or ExperimentSpec()
    flat = {str(k): str(_last(v)) for k, v in params.items()}
    messages: list[str] = []
    spec = default

    # A preset first, so a short link like ?preset=lenet5&dataset=mnist works; the
    # fields the link gives then override the preset's.
    if "preset" in flat:
        try:
            spec = apply_preset(spec, flat["preset"])
        except SpecError as exc:
            messages.append(f"{exc} The link's preset was not used.")
    base = spec
    # The block count comes last: it resizes whatever filters the link leaves (see below).
    given = [name for name in field_names() if name in flat and name not in ("preset", "conv_blocks")]
    for name in list(given):
        try:
            spec = ExperimentSpec.from_query_params({name: flat[name]}, base=spec)
        except SpecError as exc:
            messages.append(f"{_clause(exc)}; using {_shown(base, name)} instead.")
            given.remove(name)

    if "dataset" in given:
        allowed = safe_dataset(spec.data.dataset, uploads_dir)
        if allowed is None:
            messages.append(
                f"The link asked for dataset {spec.data.dataset!r}, which is neither a named dataset "
                f"({', '.join(CATALOG)}) nor an uploaded file; using {_shown(base, 'dataset')} instead."
            )
            spec = replace(spec, data=replace(spec.data, dataset=base.data.dataset))
            given.remove("dataset")
        else:
            spec = replace(spec, data=replace(spec.data, dataset=allowed))

    # Each value's own bounds and choices, and the settings that must agree (a problem of
    # a derived field is one of the field it comes from). Combinations that depend on the
    # input (a kernel too big for it) stay: the page explains them next to the controls.
    while problems := [p for p in check(spec, shapes=False) if _source(p.field_name) in given]:
        for problem in problems:
            name = _source(problem.field_name)
            messages.append(f"{_clause(problem.message)}; using {_shown(base, name)} instead.")
            spec = spec.with_values(**{name: get_value(base, name)})
        given = [name for name in given if name not in {_source(p.field_name) for p in problems}]

    # ?conv_blocks=3&filters=4,8: the block count wins and the filters follow it, as the
    # slider does (truncated, or the last doubled); ?conv_blocks=3 alone resizes the preset's.
    if "conv_blocks" in flat:
        filters = spec.arch.filters
        try:
            spec = ExperimentSpec.from_query_params({"conv_blocks": flat["conv_blocks"]}, base=spec)
        except SpecError as exc:
            messages.append(f"{_clause(exc)}; using {_shown(spec, 'conv_blocks')} instead.")
        if "filters" in given and spec.arch.filters != filters:
            messages.append(
                f"The link gives {len(filters)} filter count(s) for {spec.arch.conv_blocks} conv block(s); "
                f"using {_shown(spec, 'filters')}."
            )

    classroom = bool(parse_bool(flat.get(CLASSROOM_KEY), False))
    return UrlState(spec=spec, messages=tuple(messages), classroom=classroom)


def url_params(spec: ExperimentSpec, *, classroom: bool = False, uploads_dir: Path | None = None) -> dict[str, str]:
    """The query parameters that reproduce `spec` (and the classroom switch).

    Args:
        spec: the configuration.
        classroom: add the classroom switch.
        uploads_dir: when given, an uploaded dataset is written relative to it, so the link
            neither shows the server's folders nor breaks when the server moves them.

    Returns:
        Parameter name -> text.
    """
    params = spec.to_query_params()
    if uploads_dir is not None and not is_named_dataset(spec.data.dataset):
        root = uploads_dir.expanduser().resolve()
        dataset = Path(spec.data.dataset)
        if dataset.is_absolute() and dataset.is_relative_to(root):
            params["dataset"] = dataset.relative_to(root).as_posix()
    if classroom:
        params[CLASSROOM_KEY] = "1"
    return params


def _source(name: str) -> str:
    # The field a link sets for `name`: the block count is derived from the filters.
    return "filters" if name == "conv_blocks" else name


def _shown(spec: ExperimentSpec, name: str) -> str:
    # "name=value" as it would appear in a link.
    value = spec.to_query_params()[name]
    return f"{name}={value or '(none)'}"


def _clause(message: Any) -> str:
    # A one-sentence message without its final full stop, to continue it with "; using ...".
    return str(message).rstrip().rstrip(".")
