"""Selections that stay put: across page changes, a reload and a shared link.

Streamlit drops a keyed widget's state when a run does not draw it, so without help the
User explorer's user, the chosen runs, Train's models and Compare's runs reset whenever the
analyst visits another page. The one way this app keeps a selection:

- `restore(key, ...)` before the widget is drawn: when Streamlit has dropped (or never had)
  the widget's value, give it back — the value kept for this session, else the value in the
  URL (a reload or a shared link), else the default; each only if it is still valid. A URL
  value another page of this session wrote (Compare's K on the User explorer) is not used.
- `remember(key, param, value)` after the widget is drawn: keep its value in a session-state
  key no widget owns (it survives page changes) and mirror it into the URL as `?param=…`.

`choice` does both around a selectbox, radio or multiselect. Values from the URL are only
ever looked up among the options the page offers (a run id, a dataset name, a model, a K) or
by a page's own lookup (a user or item id), so an unknown or hostile value is ignored and
the default shown. A URL string never becomes a path itself: the dataset and run options
come from listings that hold only names passing core.names (`list_datasets`,
`RunStore.list`), and pages show the chosen user or item through `dashboard.text.md`.
Each page's URL holds its own selections: `prune` drops those another page left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

#: URL parameters of page selections (the sidebar's 'dataset' is on every page: never pruned)
PAGE_PARAMS = ("runs", "run", "user", "item", "k", "models")
_PREFIX = "_kept_"  # session-state key of a kept value: _kept_<widget key>
_WRITTEN = "_selection_params_written"  # URL params the current page run wrote
_OWNERS = "_selection_param_owners"  # {URL param: widget key that last wrote it}


def restore(
    key: str,
    param: str,
    default: Any,
    *,
    decode: Callable[[str], Any | None],
    many: bool = False,
) -> None:
    """Give the widget keyed `key` back its kept value before it is drawn.

    Does nothing while the widget still holds a value (it is the truth then). Otherwise the
    first valid of: the value kept for this session, the URL's `param`, `default`. `decode`
    maps one string (as `remember` encoded it) to a valid value or None (unknown values are
    ignored); with `many` the value is a list and each element is decoded on its own.
    """
    if key in st.session_state:
        return
    kept = st.session_state.get(_PREFIX + key)
    # a URL value another page of this session wrote (its K, its runs) is not this widget's
    mine = st.session_state.get(_OWNERS, {}).get(param, key) == key
    for candidate in (kept, _from_url(param, many) if mine else None):
        value = _valid(candidate, decode, many)
        if value is not None:
            st.session_state[key] = value
            return
    if default is not None:
        st.session_state[key] = default


def remember(key: str, param: str, value: Any, *, encode: Callable[[Any], str] = str) -> None:
    """Keep the value the widget keyed `key` shows (as the text the URL holds, so both are
    read back through one `decode`) and write it into the URL as `param`."""
    text = None if value is None or value == [] else _encode(value, encode)
    st.session_state[_PREFIX + key] = text
    st.session_state.setdefault(_WRITTEN, set()).add(param)
    st.session_state.setdefault(_OWNERS, {})[param] = key
    if text is None:
        if param in st.query_params:
            del st.query_params[param]
    elif _from_url(param, isinstance(text, list)) != text:  # write only what changed
        st.query_params[param] = text


def choice(
    draw: Callable[..., Any],
    label: str,
    options: Sequence,
    *,
    key: str,
    param: str,
    default: Any = None,
    **kwargs: Any,
) -> Any:
    """`draw(label, options, key=key, **kwargs)` — st.selectbox, st.radio or st.multiselect,
    or a container's — with its value kept (see the module docstring); returns the value.

    The URL holds `str(option)`; only options of `options` are accepted back. `default` (a
    list for a multiselect) is used when nothing valid is kept; None: the first option.
    Pass no `index`/`default` to `draw` itself: the value is given through session state.
    """
    many = isinstance(default, list)
    by_text = {str(o): o for o in options}
    restore(key, param, default, decode=by_text.get, many=many)
    value = draw(label, options, key=key, **kwargs)
    remember(key, param, value)
    return value


def begin() -> None:
    """A page starts drawing: no page selection has been written to the URL yet."""
    st.session_state[_WRITTEN] = set()


def prune() -> None:
    """A page finished drawing: drop the URL's page selections it did not write (another
    page's), so the address shows this page's view and a link to it opens only that."""
    written = st.session_state.get(_WRITTEN, set())
    for param in PAGE_PARAMS:
        if param not in written and param in st.query_params:
            del st.query_params[param]


def _encode(value: Any, encode: Callable[[Any], str]) -> str | list[str]:
    return [encode(v) for v in value] if isinstance(value, list) else encode(value)


def _from_url(param: str, many: bool) -> list[str] | str | None:
    if param not in st.query_params:
        return None
    return st.query_params.get_all(param) if many else st.query_params.get(param)


def _valid(candidate: Any, decode: Callable[[str], Any | None], many: bool) -> Any | None:
    """`candidate` decoded and checked; None when nothing of it is valid."""
    if candidate is None:
        return None
    if many:
        items = candidate if isinstance(candidate, list) else [candidate]
        values = [decode(str(v)) for v in items]
        picked = list(dict.fromkeys(v for v in values if v is not None))
        return picked or None
    if isinstance(candidate, list):
        return None
    return decode(str(candidate))
