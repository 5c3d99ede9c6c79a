"""YAML reading that remembers the line of every value, so problems can name file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """A parsed YAML file: the plain data and the 1-based line where each value starts."""

    path: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, key: PathKey) -> int:
        """The line of the value at ``key``, or of its nearest ancestor that has one."""
        key = tuple(key)
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)


class YamlSyntaxError(Exception):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


def read_yaml(path: Path) -> YamlDocument:
    """Parse a YAML file safely; raises YamlSyntaxError with the line of the first error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(path, 1, f"not UTF-8 text ({exc.reason})") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(
            path,
            line,
            f"YAML syntax: {exc.problem or exc}; check the indentation, quotes "
            "and brackets on this line or the one above",
        ) from exc
    document = YamlDocument(path, None)
    _refuse_aliases(node, path)
    document.data = _convert(node, (), document.lines, path) if node is not None else None
    return document


def _refuse_aliases(root: yaml.Node | None, path: Path) -> None:
    """Course files need no anchors; refusing aliases also stops "billion laughs" expansion."""
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise YamlSyntaxError(
                path,
                node.start_mark.line + 1,
                "YAML anchors and aliases (& and *) are not allowed in course files; write the value out",
            )
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _convert(node: yaml.Node, key: PathKey, lines: dict[PathKey, int], path: Path) -> Any:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(
                    path, key_node.start_mark.line + 1, "a key must be a plain name, not a list or mapping"
                )
            name = key_node.value  # keys stay strings: `true:` or `1:` is a key named "true" or "1"
            if name in result:
                raise YamlSyntaxError(
                    path,
                    key_node.start_mark.line + 1,
                    f"duplicate key '{name}' (first at line {lines[(*key, name)]}); keep only one of them",
                )
            result[name] = _convert(value_node, (*key, name), lines, path)
            lines[(*key, name)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*key, index), lines, path) for index, item in enumerate(node.value)]
    # A scalar: let the safe constructor decide its type (int, bool, str, ...).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:  # e.g. an unknown tag such as `!foo` or bad `!!binary`
        raise YamlSyntaxError(
            path,
            node.start_mark.line + 1,
            f"YAML value: {exc.problem or exc}; remove the '!' tag and write a plain value",
        ) from exc
    finally:
        loader.dispose()
