"""mkdocs hook: pages whose reference text comes from the code, so it cannot drift from it.

A page may hold these markers, each replaced at build time:

* ``<!-- cli: MODULE:FUNCTION -->``: the ``--help`` of the parser ``FUNCTION()`` returns, and of
  each of its sub-commands (the CLI reference comes from the parsers);
* ``<!-- config -->``: every field of :class:`tempotokens.training.config.TrainConfig`, section by
  section, with its type and default (the config reference comes from the dataclasses);
* ``<!-- exit-statuses -->``: the shared exit statuses of :mod:`avalign.runctl`;
* ``<!-- schemas -->``: a table per record of :mod:`benchmarks.records` (the record schemas come
  from the dataclasses the runner writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re

_CLI = re.compile(r"<!-- cli: ([\w.]+):(\w+) -->")


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"
    return parser.format_help().rstrip()


def _cli(module: str, function: str) -> str:
    parser = getattr(importlib.import_module(module), function)()
    out = [f"```text\n{_help(parser)}\n```"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(f"### `{parser.prog} {name}`\n\n```text\n{_help(sub)}\n```")
    return "\n\n".join(out)


def _type_name(t) -> str:
    return _cell(t if isinstance(t, str) else getattr(t, "__name__", str(t)))


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return str(text).replace("|", "\\|")


def _comments(cls) -> dict[str, str]:
    """``{field: text}`` of the ``#:`` comments beside (or above) a dataclass's fields."""
    import inspect

    out, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+#:\s?(.*)$", line)
        if m:
            above.append(m.group(1))
            continue
        m = re.match(r"\s+(\w+)\s*:[^=]*(?:=.*?)?(?:#:\s?(.*))?$", line)
        if m and not line.strip().startswith(("def ", "@", '"')):
            out[m.group(1)] = " ".join(above + ([m.group(2)] if m.group(2) else []))
        above = []
    return out


def _config() -> str:
    from tempotokens.training.config import TrainConfig

    default = TrainConfig()
    top, sections = [], []
    for section in dataclasses.fields(TrainConfig):
        value = getattr(default, section.name)
        if not dataclasses.is_dataclass(value):
            top.append(f"| `{section.name}` | `{_type_name(section.type)}` | `{value!r}` | "
                       f"{_cell(_comments(TrainConfig).get(section.name, ''))} |")
            continue
        notes = _comments(type(value))
        sections.append(f"\n## `{section.name}`\n\n| field | type | default | meaning |\n|---|---|---|---|")
        for f in dataclasses.fields(value):
            sections.append(f"| `{section.name}.{f.name}` | `{_type_name(f.type)}` | `{_cell(repr(getattr(value, f.name)))}` | "
                            f"{_cell(notes.get(f.name, ''))} |")
    head = "| field | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(top) + "\n" if top else ""
    return head + "\n".join(sections)


def _exit_statuses() -> str:
    from avalign import runctl

    rows = [("0", runctl.EXIT_OK, "all items done (items whose metric does not apply count as done)"),
            ("1", runctl.EXIT_ITEM_ERROR, "some items failed; every other item was written"),
            ("2", runctl.EXIT_USAGE, "usage error or fatal error (bad flags, missing weights, a full disk, "
                                     "an output held by a live run)"),
            ("130", runctl.EXIT_SIGINT, "stopped by SIGINT (Ctrl-C); what was finished is kept, a rerun resumes"),
            ("143", runctl.EXIT_SIGTERM, "stopped by SIGTERM; the same")]
    return "| status | meaning |\n|---|---|\n" + "\n".join(f"| {v} | {m} |" for _, v, m in rows)


def _schemas() -> str:
    from benchmarks import records

    out = []
    for cls in records.RECORDS:
        notes = {}
        for klass in reversed(cls.__mro__):  # inherited fields keep their notes
            if dataclasses.is_dataclass(klass) and klass.__module__ == records.__name__:
                notes.update(_comments(klass))
        renames = getattr(cls, "RENAMES", {})
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out.append(f"## `{cls.__name__}` — `{cls.FILE}`\n\n{doc}\n\n| field | type | meaning |\n|---|---|---|")
        for f in dataclasses.fields(cls):
            name = renames.get(f.name, f.name)
            out.append(f"| `{name}` | `{_type_name(f.type)}` | {_cell(notes.get(f.name, ''))} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- schemas -->" in markdown:
        markdown = markdown.replace("<!-- schemas -->", _schemas())
    markdown = _CLI.sub(lambda m: _cli(m.group(1), m.group(2)), markdown)
    if "<!-- config -->" in markdown:
        markdown = markdown.replace("<!-- config -->", _config())
    if "<!-- exit-statuses -->" in markdown:
        markdown = markdown.replace("<!-- exit-statuses -->", _exit_statuses())
    return markdown
