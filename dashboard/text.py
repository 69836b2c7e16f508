"""User strings shown as typed: the one escaping helper of the dashboard.

Titles, categories, ids, scenario and dataset names come from uploaded files, so they may
hold Markdown (`**x**`, `[a](http://x)`), LaTeX (`$x^2$`), HTML (`<b>`), autolinks
(`https://…`, `www.…`, `a@b.c`) or Streamlit directives (`:red[x]`, `:material/x:`).

- `md(text)` for a user string placed inside anything Streamlit renders as Markdown
  (st.markdown/write/caption/subheader/info/error, widget labels, radio options): every
  significant character is backslash-escaped, line breaks become spaces, and an invisible
  word joiner (U+2060) follows '://', the first 'w' of 'www.' and '@' (GFM finds literal
  autolinks after escapes are decoded). The string shows as typed and cannot start a
  heading, a list or a link.
- `plot(text)` for a user string inside a Plotly figure (titles, axis ticks, hover and text
  labels): Plotly renders a few HTML tags there (<b>, <br>, <a href>), so '<', '>' and '&'
  become entities, which Plotly shows as the characters.

Selectbox and multiselect options and dataframe cells are shown as plain text by Streamlit
and need neither; st.metric values are Markdown (a category there goes through `md`).
"""

from __future__ import annotations

import html
import re

import pandas as pd

#: CommonMark escapable punctuation that means something in Streamlit's Markdown (emphasis,
#: code, links, headings, lists, tables, strikethrough, HTML, LaTeX, directives, autolinks)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:/&@])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x00-\x08\x0e-\x1f\x7f\u2028\u2029]+")
#: where GFM finds a literal autolink ('https://', 'www.', 'a@b.c'); a backslash cannot stop it
_AUTOLINK = re.compile(r"(?i)(://|w(?=ww\.)|@)")
WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """`text` as a Markdown fragment that renders exactly as typed (on one line)."""
    one_line = _LINE_BREAKS.sub(" ", str(text))
    unlinked = _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, one_line)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked)


def plot(text: object) -> str:
    """`text` safe inside a Plotly label: '<', '>' and '&' as entities."""
    return html.escape(str(text), quote=False)


def plot_column(values: pd.Series) -> pd.Series:
    """`plot` over a column of user strings (missing values stay missing)."""
    return values.map(lambda v: v if pd.isna(v) else plot(v))
