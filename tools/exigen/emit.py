"""Writes one Python module per schema set: message classes, enums and grammar tables.

Schema sets that import the same namespaces (the -20 sets all import CommonTypes and xmldsig) can
share those types: `SharedTypes` writes their classes, enums and grammar tables once, into a module
of their own, and every sharing set's module imports (and re-exports) them and appends its own
tables after the shared ones, so a shared type has one class and one grammar index everywhere.
Grammar tables stay per module: each set's grammar of a shared type is checked to equal the
shared one before it is replaced by it (an EXI grammar depends on the schema set, e.g. through
substitution groups), and generation fails if they differ.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from pathlib import Path

from .grammar import AT, CH, CH_UNTYPED, EE, SE, SE_ANY, Grammar, GrammarBuilder, width
from .xsd import XS, ComplexType, ElementDecl, QName, SchemaSet, SimpleType, files_sha256

GENERATOR_VERSION = "2"

# Repeated elements that the JSON form writes as one object when they occur once: xmldsig's
# Transform, which the C codecs (cbexigen/libcbv2g, OpenV2G) model as a single slot and the
# test vectors show that way. Python still holds a tuple.
JSON_SINGLE_ITEM = {"TransformsType": ("Transform",)}

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
# Namespaces whose types the -20 schema sets share (one class each, in a shared module).
SHARED_NAMESPACES = frozenset({"urn:iso:std:iso:15118:-20:CommonTypes", DSIG_NS})

# Datatype kinds, mirrored in exi_codec/_tables.py.
DT_STRING, DT_BOOL, DT_UINT, DT_INT, DT_NBIT, DT_ENUM, DT_HEX, DT_B64, DT_DECIMAL = range(9)


def snake(name: str) -> str:
    name = name.replace("PnC", "Pnc")  # one word: pnc_..., not pnc_...
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"_+", "_", s).lower()
    return s + "_" if keyword.iskeyword(s) else s


def _ident(value: str) -> str:
    s = re.sub(r"\W", "_", value)
    if not s or s[0].isdigit():
        s = "_" + s
    return s + "_" if keyword.iskeyword(s) else s


class ModuleWriter:
    def __init__(self, schema: SchemaSet, name: str, description: str) -> None:
        self.schema = schema
        self.name = name
        self.description = description
        self.builder = GrammarBuilder(schema)
        self.grammar_ids: dict[int, int] = {}
        self.grammar_list: list[Grammar] = []
        self.class_names: dict[int, str] = {}  # id(ComplexType) -> class name
        self.enum_names: dict[int, str] = {}  # id(SimpleType) -> enum class name
        self.dts: list[tuple[tuple[object, ...], SimpleType]] = []
        self.dt_index: dict[tuple[object, ...], int] = {}
        self.used_names: set[str] = set()
        self.shared: SharedTypes | None = None
        self.reexports: list[str] = []  # the shared classes and enums this set reaches
        self.n_shared_grammars = 0  # GRAMMARS and DATATYPES start with the shared module's
        self.n_shared_dts = 0
        self.doc_entries: list[tuple[ElementDecl, int]] = []
        self.frag: list[tuple[QName, ElementDecl | None]] = []
        self.dsig: list[tuple[QName, ElementDecl | None]] = []

    # -- naming ------------------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self.used_names:
            name, n = f"{base}_{n}", n + 1
        self.used_names.add(name)
        return name

    def class_name(self, ct: ComplexType, hint: str) -> str:
        if id(ct) not in self.class_names:
            base = ct.name[1] if ct.name else hint
            self.class_names[id(ct)] = self._unique(_ident(base))
        return self.class_names[id(ct)]

    def enum_name(self, st: SimpleType, hint: str) -> str:
        if id(st) not in self.enum_names:
            base = st.name[1] if st.name and st.name[0] != XS else hint + "Enum"
            self.enum_names[id(st)] = self._unique(_ident(base))
        return self.enum_names[id(st)]

    # -- tables ------------------------------------------------------------------------------
    def grammar_id(self, t: ComplexType | SimpleType, hint: str) -> int:
        if id(t) in self.grammar_ids:
            return self.grammar_ids[id(t)]
        g = self.builder.grammar_for(t)
        gid = len(self.grammar_list)
        self.grammar_ids[id(t)] = gid
        self.grammar_list.append(g)
        if isinstance(t, ComplexType):
            self.class_name(t, hint)
        for f in g.fields:  # reach every nested type (names hint from the element)
            if f.ctype is not None:
                self.grammar_id(f.ctype, f.name + "Type")
            elif f.kind == "elem" and f.simple is not None:
                self.grammar_id(f.simple, f.name)
            if f.simple is not None:
                self.datatype(f.simple, f.name)
        return gid

    def datatype(self, st: SimpleType, hint: str) -> int:
        key: tuple[object, ...]
        if st.enumeration:
            n = len(st.enumeration)
            key = (DT_ENUM, width(n), self.enum_name(st, hint))
        elif st.kind == "string":
            key = (DT_STRING, st.length or st.min_length or 0,
                   st.length if st.length is not None else st.max_length)
        elif st.kind == "boolean":
            key = (DT_BOOL,)
        elif st.kind in ("hexBinary", "base64Binary"):
            key = (DT_HEX if st.kind == "hexBinary" else DT_B64, st.length or st.min_length or 0,
                   st.length if st.length is not None else st.max_length)
        elif st.kind == "decimal":
            key = (DT_DECIMAL,)
        elif st.kind == "integer":
            lo, hi = st.min, st.max
            if lo is not None and hi is not None and hi - lo < 4096:
                key = (DT_NBIT, width(hi - lo + 1), lo, hi)  # EXI 7.1.9: n-bit offset
            elif lo is not None and lo >= 0:
                key = (DT_UINT, lo, hi)
            else:
                key = (DT_INT, lo, hi)
        else:
            raise NotImplementedError(st.kind)
        if key not in self.dt_index:
            self.dt_index[key] = len(self.dts)
            self.dts.append((key, st))
        return self.dt_index[key]

    def collect(self) -> None:
        """Reach every type of the set: from the document, fragment and xmldsig roots."""
        doc = sorted(self.schema.elements.values(), key=lambda d: (d.qname[1], d.qname[0]))
        self.doc_entries = [(d, self.grammar_id(d.type, d.qname[1]))  # type: ignore[arg-type]
                            for d in doc]
        self.frag = self._fragment_elements(self.schema.all_elements)
        self.dsig = self._fragment_elements([d for d in self.schema.all_elements
                                             if d.qname[0] == DSIG_NS])
        for _, decl in self.frag + self.dsig:
            if decl is not None:
                self.grammar_id(decl.type, decl.qname[1])  # type: ignore[arg-type]

    def shared_reached(self) -> tuple[list[QName], list[QName]]:
        """Named types of the shared namespaces this set reaches: (complex types, enums)."""
        cts = sorted({g.ctype.name for g in self.grammar_list
                      if isinstance(g.ctype, ComplexType) and g.ctype.name
                      and g.ctype.name[0] in SHARED_NAMESPACES}, key=_qkey)
        enums = sorted({st.name for key, st in self.dts
                        if key[0] == DT_ENUM and st.name and st.name[0] in SHARED_NAMESPACES},
                       key=_qkey)
        return cts, enums

    def use_shared(self, shared: SharedTypes) -> None:
        """Start from the shared module's tables: its grammars and datatypes come first, and this
        set's own copies of the shared types map onto them (after checking they are equal)."""
        common = shared.writer
        # What this set reaches of the shared types (its module re-exports exactly these).
        probe = ModuleWriter(self.schema, self.name, self.description)
        probe.collect()
        cts, enums = probe.shared_reached()
        self.reexports = sorted([common.class_names[id(common.schema.type_by_name(q))]
                                 for q in cts]
                                + [common.enum_names[id(common.schema.type_by_name(q))]
                                   for q in enums])
        self.shared = shared
        self.used_names = set(common.used_names)
        self.dts = list(common.dts)
        self.dt_index = dict(common.dt_index)
        self.grammar_list = list(common.grammar_list)
        self.n_shared_grammars = len(self.grammar_list)
        self.n_shared_dts = len(self.dts)
        mine: dict[int, ComplexType | SimpleType] = {}
        for gid, g in enumerate(common.grammar_list):
            qn = g.ctype.name
            if qn is None:
                continue
            t = self.schema.type_by_name(qn)
            mine[gid] = t
            self.grammar_ids[id(t)] = gid
            if isinstance(t, ComplexType):
                self.class_names[id(t)] = common.class_names[id(g.ctype)]
        for key, st in common.dts:
            if key[0] == DT_ENUM:
                assert st.name is not None, "shared enumerations are named types"
                t = self.schema.type_by_name(st.name)
                assert isinstance(t, SimpleType) and t.enumeration == st.enumeration, st.name
                self.enum_names[id(t)] = common.enum_names[id(st)]
        # The grammars this set builds for the shared types must be the shared ones.
        for gid, t in mine.items():
            if t.name not in cts and isinstance(t, ComplexType):
                continue
            ours = self.builder.grammar_for(t)
            theirs = common.grammar_list[gid]
            if (self._render_grammar(ours) != common._render_grammar(theirs)
                    or (isinstance(t, ComplexType)
                        and self._render_class(ours) != common._render_class(theirs))):
                raise ValueError(f"{self.name}: the grammar of {t.name} differs from the one "
                                 f"shared by {', '.join(shared.sets)}: it cannot be shared")
        assert len(self.dts) == self.n_shared_dts, "shared types with datatypes of their own"

    # -- output ------------------------------------------------------------------------------
    def render(self, sha256: str) -> str:
        self.collect()
        out: list[str] = []
        w = out.append
        w(f'"""EXI grammar tables and message types for {self.description}.\n')
        w(f"Generated by tools.exigen version {GENERATOR_VERSION} from the XSDs with sha256")
        w(f"{sha256}. Do not edit: regenerate with `make regen`.")
        w('"""\n')
        w("# ruff: noqa")
        w("from __future__ import annotations\n")
        w("from exi_codec._model import ExiEnum, Message, _bind, _field")
        if self.shared is not None:
            w(f"from exi_codec.schemas import {self.shared.name} as _shared")
            w(f"from exi_codec.schemas.{self.shared.name} import (  # shared with "
              f"{', '.join(s for s in self.shared.sets if s != self.name)}")
            for n in self.reexports:
                w(f"    {n} as {n},")
            w(")")
        w("")
        w(f"SCHEMA = {self.name!r}")
        w(f"SCHEMA_SHA256 = {sha256!r}")
        w(f"GENERATOR_VERSION = {GENERATOR_VERSION!r}\n")
        self._render_types(w, out)
        roots: list[str] = []
        for d, _gid in self.doc_entries:
            if isinstance(d.type, ComplexType):
                base = self.class_names[id(d.type)]
                cname = self._unique(_ident(d.qname[1])) if base != d.qname[1] else base
                if cname != base:
                    w(f"\nclass {cname}({base}):")
                    w("    __slots__ = ()")
                else:
                    assert self.grammar_ids[id(d.type)] >= self.n_shared_grammars, \
                        f"{cname}: a shared class cannot be a root element's class"
                roots.append(cname)
            else:
                roots.append("None")
        self._render_tables(w)
        w("\n# Document grammar: (qname uri, local name, grammar, root class) in event-code order.")
        w("DOCUMENT = (")
        for (d, gid), cname in zip(self.doc_entries, roots, strict=True):
            w(f"    ({d.qname[0]!r}, {d.qname[1]!r}, {gid}, {cname}),")
        w(")")
        for title, entries in (("FRAGMENT", self.frag), ("XMLDSIG_FRAGMENT", self.dsig)):
            w(f"\n# {title}: every element declaration (by qname) of the set, EXI-sorted.")
            w(f"{title} = (")
            for qn, decl in entries:
                gid = self.grammar_ids[id(decl.type)] if decl is not None else -1
                w(f"    ({qn[0]!r}, {qn[1]!r}, {gid}),")
            w(")")
        w("\n_bind(__name__, GRAMMARS, DATATYPES)")
        return "\n".join(out) + "\n"

    def _render_types(self, w: Callable[[str], None], out: list[str]) -> None:
        """Enums and classes of this module (not those it imports from the shared module)."""
        for key, st in self.dts[self.n_shared_dts:]:
            if key[0] == DT_ENUM:
                w(f"\nclass {key[2]}(ExiEnum):")
                seen: set[str] = set()
                for v in st.enumeration:
                    ident = _ident(v)
                    while ident in seen:
                        ident += "_"
                    seen.add(ident)
                    w(f"    {ident} = {v!r}")
        for g in self.grammar_list[self.n_shared_grammars:]:
            if isinstance(g.ctype, ComplexType):
                out.extend(self._render_class(g))

    def _render_tables(self, w: Callable[[str], None]) -> None:
        # One entry per line (a grammar: one state per line) so that a diff is reviewable.
        prefix = "_shared.DATATYPES + " if self.shared is not None else ""
        w("\n\n# Datatypes: (kind, ...) - see exi_codec/_tables.py")
        w(f"DATATYPES = {prefix}(")
        for i, (key, _) in enumerate(self.dts[self.n_shared_dts:], self.n_shared_dts):
            text = f"({key[0]}, {key[1]}, {key[2]})" if key[0] == DT_ENUM else repr(key)
            w(f"    {text},  # {i}")
        w(")")
        prefix = "_shared.GRAMMARS + " if self.shared is not None else ""
        w("\n# Grammars: (class, field names, list flags, states); state: (bits, productions);")
        w("# production: (kind, field, arg, next); kinds AT=0 SE=1 EE=2 CH=3 SE(*)=4")
        w("# CH(untyped)=5; arg: the datatype of AT/CH, the grammar of SE.")
        w(f"GRAMMARS = {prefix}(")
        for i, g in enumerate(self.grammar_list[self.n_shared_grammars:],
                              self.n_shared_grammars):
            w(f"    # {i}: {_grammar_title(g)}")
            w(self._render_grammar(g))
        w(")")

    def _fragment_elements(
        self, decls: list[ElementDecl]
    ) -> list[tuple[tuple[str, str], ElementDecl | None]]:
        by_name: dict[tuple[str, str], ElementDecl | None] = {}
        for d in decls:
            if d.qname in by_name:
                prev = by_name[d.qname]
                if prev is not None and prev.type is not d.type:
                    by_name[d.qname] = None  # conflicting types: EXI uses the ur-type here
            else:
                by_name[d.qname] = d
        return sorted(by_name.items(), key=lambda kv: (kv[0][1], kv[0][0]))

    def _py_type(self, f: object) -> str:
        from .grammar import Field

        assert isinstance(f, Field)
        if f.ctype is not None:
            t = self.class_names[id(f.ctype)]
        else:
            st = f.simple
            assert st is not None
            if st.enumeration:
                t = self.enum_names[id(st)]
            else:
                t = {"string": "str", "boolean": "bool", "integer": "int", "hexBinary": "bytes",
                     "base64Binary": "bytes", "decimal": "str"}[st.kind]
        if f.is_list:
            return f"tuple[{t}, ...]"
        return f"{t} | None"

    def _render_class(self, g: Grammar) -> list[str]:
        ct = g.ctype
        name = self.class_names[id(ct)]
        lines = [f"\n\nclass {name}(Message):", "    __slots__ = ()"]
        if ct.name and ct.name[1] in JSON_SINGLE_ITEM:
            lines.append(f"    _exi_json_single = {JSON_SINGLE_ITEM[ct.name[1]]!r}")
        pynames = _unique_snake([f.name for f in g.fields])
        if g.fields:
            params = ", ".join(
                f"{p}: {self._py_type(f)} = {'()' if f.is_list else 'None'}"
                for p, f in zip(pynames, g.fields, strict=True)
            )
            lines.append(f"\n    def __new__(cls, *, {params}) -> {name}:")
            vals = ", ".join(pynames)
            lines.append(f"        return tuple.__new__(cls, ({vals},))")
        else:
            lines.append(f"\n    def __new__(cls) -> {name}:")
            lines.append("        return tuple.__new__(cls, ())")
        for i, p in enumerate(pynames):
            lines.append(f"    {p} = _field({i})")
        return lines

    def _render_grammar(self, g: Grammar) -> str:
        cls = self.class_names[id(g.ctype)] if isinstance(g.ctype, ComplexType) else "None"
        flags = tuple(f.is_list for f in g.fields)
        states = []
        for prods in g.states:
            items = []
            for kind, fidx, arg, nxt in prods:
                a: object
                if kind == SE:
                    assert isinstance(arg, ElementDecl)
                    a = self.grammar_ids[id(arg.type)]
                elif kind in (AT, CH):
                    f = g.fields[fidx]
                    assert f.simple is not None
                    a = self.datatype(f.simple, f.name)
                elif kind in (SE_ANY, CH_UNTYPED, EE):
                    a = -1
                else:
                    raise AssertionError(kind)
                items.append(f"({kind}, {fidx}, {a}, {nxt})")
            bits = width(len(prods) + 1)  # +1: the level-2 escape of non-strict grammars
            states.append(f"        ({bits}, ({', '.join(items)},)),")
        names = tuple(f.name for f in g.fields)
        return "\n".join([f"    ({cls}, {names!r}, {flags!r}, (", *states, "    )),"])


def _grammar_title(g: Grammar) -> str:
    t = g.ctype
    if isinstance(t, ComplexType):
        return t.name[1] if t.name else "(anonymous complex type)"
    if t.name is None:
        return f"simple ({t.kind})"
    return f"simple {'xs:' if t.name[0] == XS else ''}{t.name[1]}"


def _qkey(qn: QName) -> tuple[str, str]:
    return (qn[1], qn[0])


class SharedTypes:
    """The types of SHARED_NAMESPACES that any of several schema sets reaches, written once.

    Their grammars are built in the first set's context; `ModuleWriter.use_shared` checks every
    set's own grammar of each shared type it reaches against them.
    """

    def __init__(self, name: str, description: str, sets: dict[str, SchemaSet]) -> None:
        self.name = name
        self.description = description
        self.sets = tuple(sets)
        cts: set[QName] = set()
        enums: set[QName] = set()
        for set_name, schema in sets.items():
            probe = ModuleWriter(schema, set_name, "")
            probe.collect()
            c, e = probe.shared_reached()
            cts.update(c)
            enums.update(e)
        ref = next(iter(sets.values()))  # each set holds every type of the shared namespaces
        self.writer = ModuleWriter(ref, name, description)
        for qn in sorted(cts, key=_qkey):
            self.writer.grammar_id(ref.type_by_name(qn), qn[1])
        for qn in sorted(enums, key=_qkey):
            st = ref.type_by_name(qn)
            assert isinstance(st, SimpleType)
            self.writer.datatype(st, qn[1])
        self.sha256 = files_sha256([f for schema in sets.values() for f in schema.files])

    def render(self) -> str:
        mw = self.writer
        out: list[str] = []
        w = out.append
        w(f'"""EXI message types and grammar tables of the {self.description}.\n')
        w(f"Generated by tools.exigen version {GENERATOR_VERSION} from the XSDs with sha256")
        w(f"{self.sha256}. Do not edit: regenerate with `make regen`.\n")
        w(f"One class per type for the modules {', '.join(self.sets)}: each imports the")
        w("classes it uses from here and appends its own tables to GRAMMARS and DATATYPES.")
        w('"""\n')
        w("# ruff: noqa")
        w("from __future__ import annotations\n")
        w("from exi_codec._model import ExiEnum, Message, _bind, _field\n")
        w(f"SHARED_BY = {self.sets!r}")
        w(f"SCHEMA_SHA256 = {self.sha256!r}")
        w(f"GENERATOR_VERSION = {GENERATOR_VERSION!r}\n")
        mw._render_types(w, out)
        mw._render_tables(w)
        w("\n# No root elements: documents and fragments belong to the schema modules.")
        w("DOCUMENT: tuple[()] = ()")
        w("\n_bind(__name__, GRAMMARS, DATATYPES)")
        return "\n".join(out) + "\n"


def _unique_snake(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        s = snake(n)
        while s in out:
            s += "_"
        out.append(s)
    return out


def write_module(schema: SchemaSet, name: str, description: str, out_dir: Path,
                 shared: SharedTypes | None = None) -> Path:
    mw = ModuleWriter(schema, name, description)
    if shared is not None:
        mw.use_shared(shared)
    text = mw.render(schema.sha256())
    path = out_dir / f"{name}.py"
    path.write_text(text)
    return path


def write_shared(shared: SharedTypes, out_dir: Path) -> Path:
    path = out_dir / f"{shared.name}.py"
    path.write_text(shared.render())
    return path


__all__ = ["write_module", "write_shared", "SharedTypes", "snake", "EE", "GENERATOR_VERSION"]
