"""Message fixtures generated from the grammar tables of the schema modules.

For every root element (a DOCUMENT entry with a class) of every schema this builds

- a *minimal* message: the cheapest path to EE in every grammar (only what the schema requires),
  values at the low end of their range (minimum, shortest length, first enumeration value);
- a *maximal* message: every optional field present, repeated fields filled up to their bound
  (at most LIST_CAP items when the bound is above SMALL_BOUND or unbounded), values at the high
  end (maximum, longest length, last enumeration value);
- *branch* messages: for each state with several SE productions (a choice, or optional elements
  that may be skipped), one message that takes that production, routed from the root down to it
  with minimal content around it and mid-range values.

Only the tables are read (GRAMMARS, DATATYPES, DOCUMENT, FRAGMENT); see exi_codec/_tables.py.
Wildcard and untyped-content productions (SE(*), CH untyped) are never taken: the engines do
not support them. A grammar that cannot reach EE without them is "unbuildable".
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import cache
from typing import Any

import exi_codec
from exi_codec._tables import (
    AT,
    CH,
    DT_B64,
    DT_BOOL,
    DT_DECIMAL,
    DT_ENUM,
    DT_HEX,
    DT_INT,
    DT_NBIT,
    DT_STRING,
    DT_UINT,
    EE,
    SE,
)

INF = float("inf")
LIST_CAP = 3  # items in a list whose bound is above SMALL_BOUND (or unbounded)
SMALL_BOUND = 24  # lists bounded at or below this are filled up to their bound
STRING_CAP = 40  # extra characters of an unbounded string in a maximal message
BINARY_CAP = 48  # extra octets of an unbounded binary in a maximal message
UINT_CAP = 2**64 - 1  # stand-in maximum of an unbounded unsigned integer
INT_CAP = 2**63  # stand-in bound of an unbounded signed integer
MAX_CHARS = "Zz9~\u00e9\u20ac\U0001d11e"  # includes 2-, 3- and 4-octet-uint code points
MID_CHARS = "EVSE-15118_"

MIN, MID, MAX = "min", "mid", "max"


class Unbuildable(Exception):
    """The grammar cannot be completed without wildcard content."""


# -- values ---------------------------------------------------------------------------------------
def _length(lo: int, hi: int | None, mode: str, cap: int) -> int:
    top = hi if hi is not None else lo + cap
    if mode == MIN:
        return lo
    if mode == MAX:
        return top
    return (lo + top + 1) // 2


def value_for(dt: tuple[Any, ...], mode: str) -> Any:
    """A valid value of a datatype: its low end, middle or high end."""
    kind = dt[0]
    if kind == DT_BOOL:
        return mode != MIN
    if kind in (DT_UINT, DT_INT, DT_NBIT):
        if kind == DT_NBIT:
            lo, hi = dt[2], dt[3]
        elif kind == DT_UINT:
            lo, hi = dt[1], dt[2] if dt[2] is not None else UINT_CAP
        else:
            lo = dt[1] if dt[1] is not None else -INT_CAP
            hi = dt[2] if dt[2] is not None else INT_CAP
        return lo if mode == MIN else hi if mode == MAX else (lo + hi) // 2
    if kind == DT_ENUM:
        members = list(dt[2])
        return members[0] if mode == MIN else members[-1] if mode == MAX else \
            members[len(members) // 2]
    if kind == DT_STRING:
        n = _length(dt[1], dt[2], mode, STRING_CAP)
        chars = MAX_CHARS if mode == MAX else MID_CHARS
        return "".join(chars[i % len(chars)] for i in range(n))
    if kind in (DT_HEX, DT_B64):
        n = _length(dt[1], dt[2], mode, BINARY_CAP)
        seed = {MIN: 0, MID: 0x5A, MAX: 0xFF}[mode]
        return bytes((seed + 37 * i) & 0xFF for i in range(n))
    if kind == DT_DECIMAL:
        return {MIN: "-12.5", MID: "0.25", MAX: "987654321.125"}[mode]
    raise ValueError(f"unknown datatype kind {kind}")


# -- grammar analysis -----------------------------------------------------------------------------
class Analysis:
    """Shortest paths through the grammars of one schema module."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.grammars = module.GRAMMARS
        self.dts = module.DATATYPES
        n = len(self.grammars)
        self.mincost: list[float] = [INF] * n
        self.to_end: list[list[float]] = [[] for _ in range(n)]  # per state: cost to EE
        self.step: list[list[int]] = [[] for _ in range(n)]  # per state: code towards EE
        for gid, (cls, _names, _flags, _states) in enumerate(self.grammars):
            if cls is None:
                self.mincost[gid] = 0
        changed = True
        while changed:  # fixed point: a grammar's cost depends on its children's
            changed = False
            for gid, g in enumerate(self.grammars):
                if g[0] is None:
                    continue
                self._backward(gid)
                c = self.to_end[gid][0]
                if c != self.mincost[gid]:
                    self.mincost[gid] = c
                    changed = True
        self._fwd: dict[int, tuple[list[float], list[tuple[int, int] | None]]] = {}
        self._bounds: dict[tuple[int, int], float] = {}

    def is_simple(self, gid: int) -> bool:
        return self.grammars[gid][0] is None

    def simple_dt(self, gid: int) -> tuple[Any, ...]:
        return self.dts[self.grammars[gid][3][0][1][0][2]]

    def cost(self, prod: tuple[int, int, int, int]) -> float:
        kind, _f, arg, _nxt = prod
        if kind == EE:
            return 0
        if kind in (AT, CH):
            return 1
        if kind == SE:
            return 1 + self.mincost[arg]
        return INF  # wildcards and untyped content

    def viable(self, gid: int, prod: tuple[int, int, int, int]) -> bool:
        return prod[0] in (AT, CH, SE) and self.cost(prod) < INF and \
            self.to_end[gid][prod[3]] < INF

    def _backward(self, gid: int) -> None:
        states = self.grammars[gid][3]
        n = len(states)
        dist = [INF] * n
        step = [-1] * n
        rev: list[list[tuple[int, int, float]]] = [[] for _ in range(n)]
        heap: list[tuple[float, int]] = []
        for s, (_bits, prods) in enumerate(states):
            for code, p in enumerate(prods):
                if p[0] == EE:
                    if dist[s] > 0:
                        dist[s], step[s] = 0, code
                        heap.append((0, s))
                else:
                    c = self.cost(p)
                    if c < INF:
                        rev[p[3]].append((s, code, c))
        heapq.heapify(heap)
        while heap:
            d, n_ = heapq.heappop(heap)
            if d > dist[n_]:
                continue
            for s, code, c in rev[n_]:
                nd = d + c
                if nd < dist[s] or (nd == dist[s] and code < step[s]):
                    if nd < dist[s]:
                        heapq.heappush(heap, (nd, s))
                    dist[s], step[s] = nd, code
        self.to_end[gid] = dist
        self.step[gid] = step

    def forward(self, gid: int) -> tuple[list[float], list[tuple[int, int] | None]]:
        """Cheapest cost from state 0 to each state, with the predecessor (state, code)."""
        if gid not in self._fwd:
            states = self.grammars[gid][3]
            dist = [INF] * len(states)
            pred: list[tuple[int, int] | None] = [None] * len(states)
            dist[0] = 0
            heap = [(0.0, 0)]
            while heap:
                d, s = heapq.heappop(heap)
                if d > dist[s]:
                    continue
                for code, p in enumerate(states[s][1]):
                    if p[0] == EE or not self.viable(gid, p):
                        continue
                    nd = d + self.cost(p)
                    if nd < dist[p[3]]:
                        dist[p[3]] = nd
                        pred[p[3]] = (s, code)
                        heapq.heappush(heap, (nd, p[3]))
            self._fwd[gid] = (dist, pred)
        return self._fwd[gid]

    def bound(self, gid: int, field: int) -> float:
        """How many items a list field can hold (INF when a loop repeats it)."""
        key = (gid, field)
        if key not in self._bounds:
            states = self.grammars[gid][3]
            best: float = 0
            for start, (_bits, prods) in enumerate(states):
                if not any(p[0] == SE and p[1] == field for p in prods):
                    continue
                s, count, seen = start, 0, set()
                while True:
                    nxt = [p[3] for p in states[s][1] if p[0] == SE and p[1] == field]
                    if not nxt:
                        break
                    if s in seen:
                        count = INF  # type: ignore[assignment]
                        break
                    seen.add(s)
                    s, count = nxt[0], count + 1
                best = max(best, count)
                if best == INF:
                    break
            self._bounds[key] = best
        return self._bounds[key]

    def cap(self, gid: int, field: int) -> int:
        b = self.bound(gid, field)
        return int(b) if b <= SMALL_BOUND else LIST_CAP

    # -- building --------------------------------------------------------------------------------
    def _collect(self, gid: int, walk: list[tuple[int, int]], mode: str,
                 child: Any) -> list[Any]:
        """Field values along a walk of (state, code); child(i, prod) builds SE values."""
        _cls, names, flags, states = self.grammars[gid]
        vals: list[Any] = [None] * len(names)
        for i, (s, code) in enumerate(walk):
            kind, f, arg, _nxt = states[s][1][code]
            if kind == EE:
                break
            if kind == SE:
                v = value_for(self.simple_dt(arg), mode) if self.is_simple(arg) else child(i, arg)
            else:
                v = value_for(self.dts[arg], mode)
            if flags[f]:
                vals[f] = (vals[f] or []) + [v]
            elif vals[f] is not None:
                raise Unbuildable(f"field {names[f]} taken twice on one path")
            else:
                vals[f] = v
        return vals

    def _instantiate(self, gid: int, cls: Any, vals: list[Any]) -> Any:
        gcls, _names, flags, _states = self.grammars[gid]
        klass = cls if cls is not None else gcls
        kwargs = {}
        for name, v, is_list in zip(klass._py_names(), vals, flags, strict=True):
            if is_list:
                kwargs[name] = tuple(v) if v else ()
            elif v is not None:
                kwargs[name] = v
        return klass(**kwargs)

    def _min_walk(self, gid: int, start: int = 0) -> list[tuple[int, int]]:
        if self.to_end[gid][start] == INF:
            raise Unbuildable(f"grammar {gid} cannot reach EE without wildcards")
        walk = []
        s = start
        states = self.grammars[gid][3]
        while True:
            code = self.step[gid][s]
            walk.append((s, code))
            p = states[s][1][code]
            if p[0] == EE:
                return walk
            s = p[3]

    def minimal(self, gid: int, cls: Any = None, mode: str = MIN) -> Any:
        if self.is_simple(gid):
            return value_for(self.simple_dt(gid), mode)
        walk = self._min_walk(gid)
        vals = self._collect(gid, walk, mode, lambda _i, sub: self.minimal(sub, None, mode))
        return self._instantiate(gid, cls, vals)

    def maximal(self, gid: int, cls: Any = None, mode: str = MAX,
                stack: tuple[int, ...] = ()) -> Any:
        if self.is_simple(gid):
            return value_for(self.simple_dt(gid), mode)
        if gid in stack:  # recursive type: stop at its minimal instance
            return self.minimal(gid, cls, mode)
        if self.to_end[gid][0] == INF:
            raise Unbuildable(f"grammar {gid} cannot reach EE without wildcards")
        _cls, _names, flags, states = self.grammars[gid]
        used = [0] * len(flags)
        walk = []
        s = 0
        while True:
            choice = None
            for code, p in enumerate(states[s][1]):
                if p[0] == EE or not self.viable(gid, p):
                    continue
                f = p[1]
                if (used[f] < self.cap(gid, f)) if flags[f] else not used[f]:
                    choice = code
                    break
            if choice is None:
                choice = self.step[gid][s]
            walk.append((s, choice))
            p = states[s][1][choice]
            if p[0] == EE:
                break
            used[p[1]] += 1
            s = p[3]
        inner = stack + (gid,)
        vals = self._collect(gid, walk, mode,
                             lambda _i, sub: self.maximal(sub, None, mode, inner))
        return self._instantiate(gid, cls, vals)

    def routed(self, gid: int, cls: Any, chain: list[tuple[int, int, int]],
               mode: str = MID) -> Any:
        """An instance of gid whose path takes chain[0] = (gid, state, code), then chain[1] in
        the SE child it enters, and so on: the last production is the target branch."""
        g, s, code = chain[0]
        assert g == gid
        dist, pred = self.forward(gid)
        if dist[s] == INF:
            raise Unbuildable(f"state {s} of grammar {gid} is unreachable")
        prefix = []
        cur = s
        while cur != 0:
            ps, pc = pred[cur]  # type: ignore[misc]
            prefix.append((ps, pc))
            cur = ps
        prefix.reverse()
        nxt = self.grammars[gid][3][s][1][code][3]
        walk = prefix + [(s, code)] + self._min_walk(gid, nxt)
        at = len(prefix)

        def child(i: int, sub: int) -> Any:
            if i == at and len(chain) > 1:
                return self.routed(sub, None, chain[1:], mode)
            return self.minimal(sub, None, mode)

        vals = self._collect(gid, walk, mode, child)
        return self._instantiate(gid, cls, vals)

    # -- branches --------------------------------------------------------------------------------
    def branches(self) -> list[tuple[int, int, int]]:
        """(grammar, state, code) of every distinct SE production in a state with several SE
        productions; states that differ only by their successors (the unrolled occurrences of
        a bounded list) count once."""
        out = []
        seen = set()
        for gid, (cls, _names, _flags, states) in enumerate(self.grammars):
            if cls is None or self.mincost[gid] == INF:
                continue
            dist, _pred = self.forward(gid)
            for s, (_bits, prods) in enumerate(states):
                if dist[s] == INF or sum(p[0] == SE for p in prods) < 2:
                    continue
                sig = tuple(p[:3] for p in prods)
                for code, p in enumerate(prods):
                    if p[0] == SE and self.viable(gid, p) and (gid, sig, code) not in seen:
                        seen.add((gid, sig, code))
                        out.append((gid, s, code))
        return out

    def paths_from(self, root_gid: int) -> dict[int, list[tuple[int, int, int]]]:
        """Breadth-first: for each grammar reachable from root_gid, the SE productions that lead
        to it (a chain of (grammar, state, code), shortest first)."""
        paths: dict[int, list[tuple[int, int, int]]] = {root_gid: []}
        frontier = [root_gid]
        while frontier:
            nxt_frontier = []
            for gid in frontier:
                if self.is_simple(gid):
                    continue
                dist, _pred = self.forward(gid)
                for s, (_bits, prods) in enumerate(self.grammars[gid][3]):
                    if dist[s] == INF:
                        continue
                    for code, p in enumerate(prods):
                        if p[0] == SE and p[2] not in paths and self.viable(gid, p):
                            paths[p[2]] = paths[gid] + [(gid, s, code)]
                            nxt_frontier.append(p[2])
            frontier = nxt_frontier
        return paths


# -- fixtures -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fixture:
    schema: str
    root: str  # root element name
    variant: str  # "minimal", "maximal" or "branch-<Type>-s<state>-<Field>"
    gid: int
    chain: tuple[tuple[int, int, int], ...] = ()  # for branches: the route to the target

    @property
    def id(self) -> str:
        return f"{self.schema}/{self.root}/{self.variant}"


@cache
def analysis(schema: str) -> Analysis:
    return Analysis(exi_codec.schema_module(schema))


def roots(schema: str) -> list[tuple[str, int, Any]]:
    """(name, grammar, class) of every root element."""
    mod = exi_codec.schema_module(schema)
    return [(name, gid, cls) for _uri, name, gid, cls in mod.DOCUMENT if cls is not None]


def unbuildable_roots(schema: str) -> list[str]:
    a = analysis(schema)
    return [name for name, gid, _cls in roots(schema) if a.mincost[gid] == INF]


def _branch_name(a: Analysis, target: tuple[int, int, int]) -> str:
    gid, s, code = target
    cls, names, _flags, states = a.grammars[gid]
    return f"branch-{cls.__name__}-s{s}-{names[states[s][1][code][1]]}"


@cache
def fixtures(schema: str, branches: bool = True) -> tuple[Fixture, ...]:
    """Every fixture of a schema. Each distinct branch is built once, under the root that
    reaches it by the shortest chain of elements (first in document order on ties)."""
    a = analysis(schema)
    out = []
    buildable = [(n, g, c) for n, g, c in roots(schema) if a.mincost[g] < INF]
    for name, gid, _cls in buildable:
        out.append(Fixture(schema, name, "minimal", gid))
        out.append(Fixture(schema, name, "maximal", gid))
    if branches:
        paths = [(name, gid, a.paths_from(gid)) for name, gid, _cls in buildable]
        for target in a.branches():
            best = None
            for name, gid, p in paths:
                if target[0] in p and (best is None or len(p[target[0]]) < len(best[2])):
                    best = (name, gid, p[target[0]])
            if best is None:
                continue  # only reachable through wildcard content
            name, gid, chain = best
            out.append(Fixture(schema, name, _branch_name(a, target), gid,
                               tuple(chain) + (target,)))
    return tuple(out)


def build(fx: Fixture) -> Any:
    """The message object of a fixture."""
    a = analysis(fx.schema)
    cls = next(c for n, g, c in roots(fx.schema) if n == fx.root and g == fx.gid)
    if fx.variant == "minimal":
        return a.minimal(fx.gid, cls)
    if fx.variant == "maximal":
        return a.maximal(fx.gid, cls)
    return a.routed(fx.gid, cls, list(fx.chain))


def fragment_class(module: Any, name: str, gid: int) -> Any:
    """The class a decoded fragment element has: its root class when it is also a root."""
    for _uri, local, g, cls in module.DOCUMENT:
        if local == name and g == gid and cls is not None:
            return cls
    return None


def fragment_elements(schema: str, grammar: str) -> list[tuple[str, int]]:
    """(name, grammar) of every element of a fragment table that has a grammar (gid >= 0)."""
    _mod, table = exi_codec._fragment_table(schema, grammar)
    return [(name, gid) for _uri, name, gid in table if gid >= 0]


def fragment_minimal(schema: str, name: str, gid: int) -> Any:
    a = analysis(schema)
    return a.minimal(gid, fragment_class(a.module, name, gid))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Path and (shortened) values of the first difference between two values, or None."""
    if type(a) is not type(b):
        return f"{path or '/'}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, tuple):
        if len(a) != len(b):
            return f"{path or '/'}: {len(a)} items != {len(b)}"
        names = type(a)._py_names() if isinstance(a, exi_codec.Message) else None
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}/{names[i] if names else i}")
            if d:
                return d
        return None
    if a != b:
        return f"{path or '/'}: {repr(a)[:80]} != {repr(b)[:80]}"
    return None
