"""Load YAML with a bound on what aliases can expand to.

An alias (``*name``) repeats a whole node; aliases of aliases multiply, so a
dozen lines can stand for billions of values ("billion laughs"). PyYAML builds
such a document as a small graph of shared objects, but everything that walks
it afterwards (checks, normalizing, JSON) pays for the full tree. This module
composes the node graph, measures the size of the tree it stands for (in
linear time: each node's size is computed once, and counted once per use; a
scalar weighs its length), and refuses documents that stand for more than a
small multiple of their own text. Pure functions; no I/O.
"""

from __future__ import annotations

from typing import Any

import yaml

#: A document may stand for this many times its own length (plus the floor below).
EXPANSION_FACTOR = 4
#: Small documents may use aliases freely up to this size (in characters, each node one more).
EXPANSION_FLOOR = 10_000


class ExpansionError(yaml.YAMLError):
    """The document's aliases expand to far more than its text holds."""

    def __init__(self, nodes: int, limit: int, mark: yaml.Mark | None) -> None:
        super().__init__(f"aliases expand it to over {limit:,} characters (from {nodes:,} written)")
        self.problem = str(self)
        self.problem_mark = mark


def expansion_limit(text: str) -> int:
    return EXPANSION_FLOOR + EXPANSION_FACTOR * len(text)


def expanded_size(node: yaml.Node | None, limit: int) -> int:
    """The size of the tree under ``node`` once every alias is expanded: one per node,
    plus the length of each scalar. Never more than ``limit + 1``."""
    if node is None:
        return 0
    sizes: dict[int, int] = {}
    # Post-order without recursion: a node's size is known once its children's are.
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    on_path: set[int] = set()
    while stack:
        current, done = stack.pop()
        key = id(current)
        if key in sizes:
            continue
        children = _children(current)
        if not done:
            if key in on_path:
                continue  # a recursive alias: PyYAML refuses it later
            on_path.add(key)
            stack.append((current, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        own = len(current.value) if isinstance(current, yaml.ScalarNode) else 0
        total = 1 + own + sum(sizes.get(id(child), 0) for child in children)
        sizes[key] = min(total, limit + 1)
    return sizes.get(id(node), 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(node: yaml.Node | None, text: str) -> None:
    """Raise :class:`ExpansionError` if ``node`` (composed from ``text``) expands too far."""
    limit = expansion_limit(text)
    size = expanded_size(node, limit)
    if size > limit:
        mark = node.start_mark if node is not None else None
        raise ExpansionError(len(text), limit, mark)


def load_bounded(text: str, loader_class: type[Any]) -> tuple[yaml.Node | None, Any]:
    """The node graph of the single document in ``text`` and the value it stands for,
    refusing (:class:`ExpansionError`) documents whose aliases expand too far.

    The text is parsed once: the checked node graph is then built by the same loader."""
    loader = loader_class(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        check_expansion(node, text)
        return node, (None if node is None else loader.construct_document(node))
    finally:
        loader.dispose()
