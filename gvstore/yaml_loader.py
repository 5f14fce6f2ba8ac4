"""The strict YAML loader behind ``gvstore.io.read_yaml`` (imported only when a YAML file is
read, so the store's modules, which import ``gvstore.io``, do not load PyYAML)."""

from __future__ import annotations

from typing import Any

import yaml

from gvstore.io import MAX_DEPTH


class BadYAML(yaml.YAMLError):
    """A YAML document that parses but that a params file may not be (one line, no mark)."""


def _key_path(parent: str, key: object) -> str:
    return f"{parent}.{key}" if isinstance(key, str) else f"{parent}[{key!r}]"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (instead of the last one silently
    winning), aliases (a few lines of ``*a`` can expand to billions of nodes) and nesting
    deeper than ``MAX_DEPTH`` (instead of running into Python's recursion limit); each
    refusal names the key path and line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._stack: list[str] = []
        self._paths: dict[int, str] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is None or not self._stack:
            path = "$"
        elif isinstance(index, yaml.ScalarNode):
            path = _key_path(self._stack[-1], index.value)
        elif isinstance(index, int):
            path = f"{self._stack[-1]}[{index}]"
        else:  # a mapping key
            path = self._stack[-1]
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 0
        if self.check_event(yaml.AliasEvent):
            raise BadYAML(f"an alias (*name) at `{path}` (line {line}); params files spell "
                           "every value out")
        if len(self._stack) >= MAX_DEPTH:
            raise BadYAML(f"nested deeper than {MAX_DEPTH} levels at `{path}` (line {line})")
        self._stack.append(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._stack.pop()
        self._paths[id(node)] = path
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[type, Any], int] = {}
        where = self._paths.get(id(node), "$")
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                ident = (type(key), key)
                hash(ident)
            except TypeError:
                continue  # the base class names an unhashable key
            line = key_node.start_mark.line + 1
            if ident in seen:
                raise BadYAML(f"duplicate key {key!r} at `{_key_path(where, key)}` (line "
                               f"{line}; first given at line {seen[ident]})")
            seen[ident] = line
        return super().construct_mapping(node, deep=deep)
