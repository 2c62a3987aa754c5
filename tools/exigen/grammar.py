"""EXI 1.0 schema-informed grammars (non-strict, as ISO 15118 uses them) from a SchemaSet.

The construction follows EXI 1.0 section 8.5.4: attribute-use states sorted by qname, particle
grammars concatenated, bounded maxOccurs unrolled exactly (it changes event-code widths), then
normalisation (epsilon elimination + merging of duplicate events = subset construction) and
event-code assignment (AT by qname, SE in schema order, wildcards, EE, CH). Non-strict grammars
keep one more level-1 code for the escape to level 2, which canonical encoders never use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from .xsd import (
    UNBOUNDED,
    ComplexType,
    ElementDecl,
    Group,
    Particle,
    SchemaSet,
    SimpleType,
    Wildcard,
)

# Production kinds, shared with the runtime (exi_codec/_tables.py mirrors these numbers).
AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
_ORDER = {AT: 0, SE: 2, SE_ANY: 3, EE: 4, CH: 5, CH_UNTYPED: 5}
EPS = -1


def width(n_codes: int) -> int:
    """Bits for an n-ary event code: ceil(log2(n))."""
    return (n_codes - 1).bit_length() if n_codes > 1 else 0


@dataclass
class Field:
    name: str  # XSD name
    kind: str  # "attr" | "elem" | "value"
    is_list: bool = False
    optional: bool = True
    simple: SimpleType | None = None  # attr/value, or elem of simple type
    ctype: ComplexType | None = None  # elem of complex type
    decl: ElementDecl | None = None


@dataclass
class Grammar:
    """One type's grammar: states of (productions), production = (kind, field, arg, next)."""

    ctype: ComplexType | SimpleType
    fields: list[Field] = field(default_factory=list)
    states: list[list[tuple[int, int, object, int]]] = field(default_factory=list)


class _NFA:
    def __init__(self) -> None:
        self.edges: list[list[tuple[int, object, int]]] = []

    def new(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def add(self, src: int, kind: int, label: object, dst: int) -> None:
        self.edges[src].append((kind, label, dst))


class GrammarBuilder:
    def __init__(self, schema: SchemaSet) -> None:
        self.schema = schema
        self.grammars: dict[int, Grammar] = {}  # id(type) -> grammar

    def grammar_for(self, t: ComplexType | SimpleType) -> Grammar:
        key = id(t)
        if key not in self.grammars:
            g = Grammar(t)
            self.grammars[key] = g  # registered first: recursive types terminate
            if isinstance(t, SimpleType):
                # Type_0: CH[typed] Type_1; Type_1: EE (plus the level-2 escape in each).
                g.fields = [Field("value", "value", optional=False, simple=t)]
                g.states = [[(CH, 0, t, 1)], [(EE, -1, None, -1)]]
            else:
                self._complex(g, t)
        return self.grammars[key]

    # -- complex types -----------------------------------------------------------------------
    def _complex(self, g: Grammar, ct: ComplexType) -> None:
        nfa = _NFA()
        attrs = sorted(ct.attributes, key=lambda a: (a.qname[1], a.qname[0]))
        for a in ct.attributes:
            g.fields.append(Field(a.qname[1], "attr", optional=not a.required, simple=a.type))
        field_of: dict[str, int] = {f.name: i for i, f in enumerate(g.fields)}

        # Attribute-use states Type_0..Type_n (an optional attribute may be skipped).
        start = nfa.new()
        cur = start
        for a in attrs:
            nxt = nfa.new()
            nfa.add(cur, AT, field_of[a.qname[1]], nxt)
            if not a.required:
                nfa.add(cur, EPS, None, nxt)
            cur = nxt
        content_start = cur
        end = nfa.new()
        content_states: list[int] = []
        if ct.simple is not None:
            g.fields.append(Field("value", "value", optional=False, simple=ct.simple))
            mid = nfa.new()
            nfa.add(cur, CH, len(g.fields) - 1, mid)
            nfa.add(mid, EPS, None, end)
        elif ct.particle is not None:
            first = len(nfa.edges)
            s, e = self._particle(nfa, ct.particle, g, field_of)
            content_states = list(range(first, len(nfa.edges)))
            nfa.add(cur, EPS, None, s)
            nfa.add(e, EPS, None, end)
        else:
            nfa.add(cur, EPS, None, end)
        if ct.mixed:
            for st in [content_start, *content_states, end]:
                nfa.add(st, CH_UNTYPED, None, st)
        nfa.add(end, EE, None, -1)
        g.states = _determinise(nfa, start)

    def _particle(self, nfa: _NFA, p: Particle, g: Grammar, field_of: dict[str, int],
                  repeated: bool = False) -> tuple[int, int]:
        # An element repeats if its own particle or any enclosing group's particle does.
        many = repeated or p.max == UNBOUNDED or p.max > 1
        start = cur = nfa.new()
        for _ in range(p.min):
            s, e = self._term(nfa, p.term, g, field_of, many, p.min == 0)
            nfa.add(cur, EPS, None, s)
            cur = e
        end = nfa.new()
        if p.max == UNBOUNDED:
            loop = nfa.new()
            nfa.add(cur, EPS, None, loop)
            s, e = self._term(nfa, p.term, g, field_of, many, True)
            nfa.add(loop, EPS, None, s)
            nfa.add(loop, EPS, None, end)
            nfa.add(e, EPS, None, loop)
        else:
            for _ in range(p.max - p.min):
                s, e = self._term(nfa, p.term, g, field_of, many, True)
                nfa.add(cur, EPS, None, s)  # the term first, then skipping it (event order)
                nfa.add(cur, EPS, None, end)
                cur = e
            nfa.add(cur, EPS, None, end)
        return start, end

    def _term(self, nfa: _NFA, term: ElementDecl | Group | Wildcard, g: Grammar,
              field_of: dict[str, int], many: bool, optional: bool) -> tuple[int, int]:
        s, e = nfa.new(), nfa.new()
        if isinstance(term, ElementDecl):
            for member in self.schema.substitution_members(term):
                idx = self._field(g, field_of, member, many, optional)
                nfa.add(s, SE, (idx, member), e)
        elif isinstance(term, Wildcard):
            nfa.add(s, SE_ANY, term.namespaces, e)
        elif term.compositor == "sequence":
            cur = s
            for part in term.particles:
                ps, pe = self._particle(nfa, part, g, field_of, many)
                nfa.add(cur, EPS, None, ps)
                cur = pe
            nfa.add(cur, EPS, None, e)
        else:  # choice: every branch is optional as far as its own fields go
            for part in term.particles:
                ps, pe = self._particle(nfa, part, g, field_of, many)
                nfa.add(s, EPS, None, ps)
                nfa.add(pe, EPS, None, e)
        return s, e

    def _field(self, g: Grammar, field_of: dict[str, int], decl: ElementDecl, many: bool,
               optional: bool) -> int:
        name = decl.qname[1]
        if name in field_of:
            f = g.fields[field_of[name]]
            if f.kind != "elem" or (f.decl is not None and f.decl.type is not decl.type):
                raise NotImplementedError(f"field {name} declared twice with different types")
            f.is_list = f.is_list or many
            return field_of[name]
        t = decl.type
        f = Field(name, "elem", is_list=many, optional=True, decl=decl,
                  simple=t if isinstance(t, SimpleType) else None,
                  ctype=t if isinstance(t, ComplexType) else None)
        g.fields.append(f)
        field_of[name] = len(g.fields) - 1
        return field_of[name]


def _determinise(nfa: _NFA, start: int) -> list[list[tuple[int, int, object, int]]]:
    """Epsilon elimination and duplicate merging (subset construction), keeping event order."""

    index: dict[frozenset[int], int] = {}
    order: list[tuple[int, ...]] = []
    result: list[list[tuple[int, int, object, int]]] = []

    def state_id(states: tuple[int, ...]) -> int:
        key = frozenset(states)
        if key not in index:
            index[key] = len(order)
            order.append(states)
            result.append([])
        return index[key]

    state_id((start,))
    i = 0
    while i < len(order):
        merged: dict[object, list[int]] = {}
        events: list[tuple[int, object]] = []
        for kind, label, dst in _closure(nfa, order[i]):
            key = (kind, _label_key(kind, label))
            if key not in merged:
                merged[key] = []
                events.append((kind, label))
            if dst not in merged[key]:
                merged[key].append(dst)
        prods = []
        for kind, label in events:
            targets = merged[(kind, _label_key(kind, label))]
            nxt = -1 if kind == EE else state_id(tuple(targets))
            prods.append(_production(kind, label, nxt))
        prods.sort(key=lambda p: _ORDER[p[0]])  # stable: SE keep schema order
        result[i] = prods
        i += 1
    return result


def _closure(nfa: _NFA, states: tuple[int, ...]) -> list[tuple[int, object, int]]:
    """The non-epsilon edges reachable from `states` through epsilon edges, in order."""
    seen: set[int] = set()
    out: list[tuple[int, object, int]] = []

    def visit(s: int) -> None:
        if s in seen:
            return
        seen.add(s)
        for kind, label, dst in nfa.edges[s]:
            if kind == EPS:
                visit(dst)
            else:
                out.append((kind, label, dst))

    for s in states:
        visit(s)
    return out


def _production(kind: int, label: object, nxt: int) -> tuple[int, int, object, int]:
    """One grammar production: (event kind, field index or label, declaration, next state)."""
    if kind == SE:
        fidx, decl = cast(tuple[int, object], label)
        return (SE, fidx, decl, nxt)
    if kind in (AT, CH):
        return (kind, label, None, nxt)  # type: ignore[return-value]
    return (kind, -1, label, nxt)


def _label_key(kind: int, label: object) -> object:
    if kind == SE:
        return id(label[1])  # type: ignore[index]
    return label
