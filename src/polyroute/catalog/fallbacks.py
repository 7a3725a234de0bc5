"""Operator-configured model fallbacks: `fallbacks = [...]` on a `[[models]]` entry, checked as a graph.

A request naming model A without fallback models of its own is served as if it had sent
`models: [A, *chain(A)]`. The chain is A's fallbacks expanded transitively, level by level (A's own
list first, then its members' fallbacks in that order), duplicates and A itself dropped. A graph that
cycles (A → B → A, A → A) or names an unknown model is refused at load, so no request can ever walk it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


class FallbackCycle(ValueError):
    """`path` is the cycle, first node repeated at the end: ("a/x", "a/y", "a/x")."""

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__("fallback cycle: " + " → ".join(path))
        self.path = path


def find_cycle(graph: Mapping[str, Collection[str]]) -> tuple[str, ...] | None:
    """The first cycle met walking the models in the mapping's order (depth first), or None."""
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path: list[str] = []
        on_path: dict[str, int] = {}
        # Iterative DFS: a stack of (node, iterator over its successors).
        stack = [(start, iter(graph.get(start, ())))]
        path.append(start)
        on_path[start] = 0
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                stack.pop()
                path.pop()
                del on_path[node]
                done.add(node)
                continue
            if nxt in on_path:
                return (*path[on_path[nxt] :], nxt)
            if nxt in done:
                continue
            on_path[nxt] = len(path)
            path.append(nxt)
            stack.append((nxt, iter(graph.get(nxt, ()))))
    return None


def expand_chain(model_id: str, graph: Mapping[str, Collection[str]]) -> tuple[str, ...]:
    """`model_id`'s fallbacks, level by level, without duplicates or the model itself. The graph is acyclic."""
    seen = {model_id}
    chain: list[str] = []
    level = list(graph.get(model_id, ()))
    while level:
        following: list[str] = []
        for fallback in level:
            if fallback in seen:
                continue
            seen.add(fallback)
            chain.append(fallback)
            following.extend(graph.get(fallback, ()))
        level = following
    return tuple(chain)


def check_and_expand(graph: Mapping[str, Collection[str]], known: Collection[str]) -> dict[str, tuple[str, ...]]:
    """Every model's expanded chain. Raises UnknownFallback for a fallback to a model not in `known`,
    FallbackCycle for a cycle."""
    for model_id, fallbacks in graph.items():
        for target in fallbacks:
            if target not in known:
                raise UnknownFallback(model_id, target)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise FallbackCycle(cycle)
    return {model_id: expand_chain(model_id, graph) for model_id in graph}


class UnknownFallback(LookupError):
    def __init__(self, model_id: str, target: str) -> None:
        super().__init__(f"{model_id}: unknown fallback model {target!r}")
        self.model_id = model_id
        self.target = target
