"""A small XML Schema reader: just the parts of XSD 1.0 the ISO 15118 / DIN / xmldsig schemas use.

It resolves include/import closures into one schema set of global elements, types and attribute
uses, with derivation flattened (extension = base content followed by the extension's own).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

XS = "http://www.w3.org/2001/XMLSchema"
QName = tuple[str, str]  # (namespace uri, local name)
UNBOUNDED = -1


def _t(tag: str) -> str:
    return f"{{{XS}}}{tag}"


# Built-in simple types: name -> (kind, min, max). Bounds matter for EXI's integer encodings.
_INT_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "integer": (None, None),
    "long": (-(2**63), 2**63 - 1),
    "int": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None),
    "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedByte": (0, 255),
    "nonPositiveInteger": (None, 0),
    "negativeInteger": (None, -1),
}
_STRINGS = {"string", "normalizedString", "token", "ID", "IDREF", "anyURI", "NCName", "Name",
            "language", "NMTOKEN", "QName"}


@dataclass
class SimpleType:
    """A resolved atomic simple type: its EXI-relevant kind and facets."""

    name: QName | None
    kind: str  # string | boolean | integer | hexBinary | base64Binary | decimal
    enumeration: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass
class ElementDecl:
    qname: QName
    type: ComplexType | SimpleType | None  # resolved lazily
    type_ref: QName | None = None
    anon: ET.Element | None = None
    abstract: bool = False
    substitution_head: QName | None = None
    is_global: bool = False


@dataclass
class Wildcard:
    namespaces: str  # "##any", "##other", or a list


@dataclass
class Group:
    compositor: str  # sequence | choice
    particles: list[Particle]


@dataclass
class Particle:
    min: int
    max: int  # UNBOUNDED = -1
    term: ElementDecl | Group | Wildcard


@dataclass
class AttributeUse:
    qname: QName
    type: SimpleType
    required: bool


@dataclass
class ComplexType:
    name: QName | None
    attributes: list[AttributeUse] = field(default_factory=list)
    particle: Particle | None = None
    simple: SimpleType | None = None  # simple content
    mixed: bool = False
    abstract: bool = False
    resolved: bool = False


def files_sha256(files: list[Path]) -> str:
    """The sha256 naming a set of schema files (by file name and content, order-independent)."""
    h = hashlib.sha256()
    for p in sorted(set(files), key=lambda p: p.name + str(p.parent.name)):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


class SchemaSet:
    """Every component reachable from the given root schema files."""

    def __init__(self, roots: list[Path]) -> None:
        self.files: list[Path] = []
        self._raw_types: dict[QName, tuple[ET.Element, str]] = {}
        self._raw_elements: dict[QName, tuple[ET.Element, str]] = {}
        self._raw_groups: dict[QName, tuple[ET.Element, str]] = {}
        self._raw_attrs: dict[QName, tuple[ET.Element, str]] = {}
        self._ns_maps: dict[int, dict[str, str]] = {}
        self._qualified: dict[str, bool] = {}
        self.types: dict[QName, ComplexType | SimpleType] = {}
        self.elements: dict[QName, ElementDecl] = {}
        self.all_elements: list[ElementDecl] = []  # global and local declarations
        for root in roots:
            self._load(root.resolve())
        for qn in sorted(self._raw_elements, key=lambda q: (q[1], q[0])):
            self.global_element(qn)
        for qn in list(self._raw_types):
            self.type_by_name(qn)

    # -- loading ---------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        if path in self.files:
            return
        self.files.append(path)
        ns_map: dict[str, str] = {}
        for _event, (prefix, uri) in ET.iterparse(path, events=["start-ns"]):
            ns_map.setdefault(prefix, uri)
        root = ET.parse(path).getroot()
        tns = root.get("targetNamespace", "")
        self._qualified[tns] = root.get("elementFormDefault") == "qualified"
        for child in root.iter():
            self._ns_maps[id(child)] = ns_map
        for child in root:
            if child.tag in (_t("import"), _t("include")) and child.get("schemaLocation"):
                self._load((path.parent / child.get("schemaLocation", "")).resolve())
            kind = {
                _t("complexType"): self._raw_types,
                _t("simpleType"): self._raw_types,
                _t("element"): self._raw_elements,
                _t("group"): self._raw_groups,
                _t("attribute"): self._raw_attrs,
            }.get(child.tag)
            if kind is not None:
                kind[(tns, child.get("name", ""))] = (child, tns)

    def sha256(self) -> str:
        return files_sha256(self.files)

    def _qname(self, node: ET.Element, value: str) -> QName:
        prefix, _, local = value.rpartition(":")
        return (self._ns_maps[id(node)].get(prefix, ""), local)

    # -- components ------------------------------------------------------------------------
    def global_element(self, qn: QName) -> ElementDecl:
        if qn in self.elements:
            return self.elements[qn]
        node, tns = self._raw_elements[qn]
        decl = self._element_decl(node, tns, is_global=True)
        return decl

    def _element_decl(self, node: ET.Element, tns: str, is_global: bool) -> ElementDecl:
        uri = tns if (is_global or self._qualified.get(tns)) else ""
        qn = (uri, node.get("name", ""))
        decl = ElementDecl(qname=qn, type=None, abstract=node.get("abstract") == "true",
                           is_global=is_global)
        if is_global:
            self.elements[qn] = decl
        self.all_elements.append(decl)
        if node.get("substitutionGroup"):
            decl.substitution_head = self._qname(node, node.get("substitutionGroup", ""))
        if node.get("type"):
            decl.type = self.type_by_name(self._qname(node, node.get("type", "")))
        else:
            anon = node.find(_t("complexType"))
            if anon is None:
                anon = node.find(_t("simpleType"))
            if anon is None:  # no type at all: the ur-type; not used by these schemas
                raise NotImplementedError(f"element {qn} without a type")
            decl.type = self._type(anon, tns, None)
        return decl

    def type_by_name(self, qn: QName) -> ComplexType | SimpleType:
        if qn in self.types:
            return self.types[qn]
        if qn[0] == XS:
            return self._builtin(qn[1])
        node, tns = self._raw_types[qn]
        return self._type(node, tns, qn)

    def _builtin(self, local: str) -> SimpleType:
        st: SimpleType
        if local in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[local]
            st = SimpleType((XS, local), "integer", min=lo, max=hi)
        elif local in _STRINGS:
            st = SimpleType((XS, local), "string")
        elif local in ("boolean", "hexBinary", "base64Binary", "decimal"):
            st = SimpleType((XS, local), local)
        else:
            raise NotImplementedError(f"built-in type xs:{local}")
        self.types[(XS, local)] = st  # one object per built-in: fragments compare types by identity
        return st

    def _type(self, node: ET.Element, tns: str, qn: QName | None) -> ComplexType | SimpleType:
        if node.tag == _t("simpleType"):
            st = self._simple(node, qn)
            if qn:
                self.types[qn] = st
            return st
        ct = ComplexType(name=qn, mixed=node.get("mixed") == "true",
                         abstract=node.get("abstract") == "true")
        if qn:
            self.types[qn] = ct  # before recursing: types may refer to themselves
        self._complex(ct, node, tns)
        return ct

    def _simple(self, node: ET.Element, qn: QName | None) -> SimpleType:
        restr = node.find(_t("restriction"))
        if restr is None:
            raise NotImplementedError(f"simple type {qn}: only restrictions are supported")
        if restr.get("base"):
            base = self.type_by_name(self._qname(restr, restr.get("base", "")))
        else:
            inner = restr.find(_t("simpleType"))
            assert inner is not None
            base = self._simple(inner, None)
        assert isinstance(base, SimpleType)
        return self._apply_facets(base, restr, qn)

    def _apply_facets(self, base: SimpleType, restr: ET.Element, qn: QName | None) -> SimpleType:
        st = SimpleType(qn, base.kind, base.enumeration, base.min, base.max, base.length,
                        base.min_length, base.max_length)
        enum = [f.get("value", "") for f in restr.findall(_t("enumeration"))]
        if enum:
            st.enumeration = tuple(enum)
        for f in restr:
            v = f.get("value")
            if v is None:
                continue
            tag = f.tag.split("}")[1]
            if tag == "minInclusive":
                st.min = int(v)
            elif tag == "minExclusive":
                st.min = int(v) + 1
            elif tag == "maxInclusive":
                st.max = int(v)
            elif tag == "maxExclusive":
                st.max = int(v) - 1
            elif tag == "length":
                st.length = int(v)
            elif tag == "minLength":
                st.min_length = int(v)
            elif tag == "maxLength":
                st.max_length = int(v)
        return st

    def _complex(self, ct: ComplexType, node: ET.Element, tns: str) -> None:
        content = node.find(_t("complexContent"))
        simple = node.find(_t("simpleContent"))
        if content is not None:
            ct.mixed = ct.mixed or content.get("mixed") == "true"
            deriv = content[0]
            base = self.type_by_name(self._qname(deriv, deriv.get("base", "")))
            assert isinstance(base, ComplexType)
            own = self._particle_of(deriv, tns)
            if deriv.tag == _t("extension"):
                ct.attributes = list(base.attributes)
                parts = [p for p in (base.particle, own) if p is not None]
                if len(parts) == 2:
                    ct.particle = Particle(1, 1, Group("sequence", parts))
                elif parts:
                    ct.particle = parts[0]
            else:
                ct.attributes = list(base.attributes)
                ct.particle = own
            self._attributes(ct, deriv, tns)
        elif simple is not None:
            deriv = simple[0]
            base = self.type_by_name(self._qname(deriv, deriv.get("base", "")))
            if isinstance(base, ComplexType):
                assert base.simple is not None
                ct.attributes = list(base.attributes)
                base_st = base.simple
            else:
                base_st = base
            ct.simple = (self._apply_facets(base_st, deriv, None)
                         if deriv.tag == _t("restriction") else base_st)
            self._attributes(ct, deriv, tns)
        else:
            ct.particle = self._particle_of(node, tns)
            self._attributes(ct, node, tns)
        ct.resolved = True

    def _attributes(self, ct: ComplexType, node: ET.Element, tns: str) -> None:
        for a in node.findall(_t("attribute")):
            if a.get("ref"):
                qn = self._qname(a, a.get("ref", ""))
                raw, _ = self._raw_attrs[qn]
                st = self.type_by_name(self._qname(raw, raw.get("type", "")))
            else:
                qn = ("", a.get("name", ""))
                if a.get("type"):
                    st = self.type_by_name(self._qname(a, a.get("type", "")))
                else:
                    inner = a.find(_t("simpleType"))
                    assert inner is not None
                    st = self._simple(inner, None)
            assert isinstance(st, SimpleType)
            if a.get("use") == "prohibited":
                ct.attributes = [u for u in ct.attributes if u.qname != qn]
                continue
            ct.attributes = [u for u in ct.attributes if u.qname != qn]
            ct.attributes.append(AttributeUse(qn, st, a.get("use") == "required"))

    def _particle_of(self, node: ET.Element, tns: str) -> Particle | None:
        for child in node:
            if child.tag in (_t("sequence"), _t("choice"), _t("group"), _t("all")):
                return self._particle(child, tns)
        return None

    def _occurs(self, node: ET.Element) -> tuple[int, int]:
        mx = node.get("maxOccurs", "1")
        return int(node.get("minOccurs", "1")), (UNBOUNDED if mx == "unbounded" else int(mx))

    def _particle(self, node: ET.Element, tns: str) -> Particle:
        lo, hi = self._occurs(node)
        tag = node.tag
        term: ElementDecl | Group | Wildcard
        if tag == _t("element"):
            if node.get("ref"):
                term = self.global_element(self._qname(node, node.get("ref", "")))
            else:
                term = self._element_decl(node, tns, is_global=False)
        elif tag in (_t("sequence"), _t("choice")):
            parts = [self._particle(c, tns) for c in node
                     if c.tag in (_t("element"), _t("sequence"), _t("choice"), _t("group"),
                                  _t("any"))]
            term = Group(tag.split("}")[1], parts)
        elif tag == _t("group"):
            gnode, gtns = self._raw_groups[self._qname(node, node.get("ref", ""))]
            inner = self._particle_of(gnode, gtns)
            assert inner is not None
            term = inner.term
        elif tag == _t("any"):
            term = Wildcard(node.get("namespace", "##any"))
        else:
            raise NotImplementedError(tag)
        return Particle(lo, hi, term)

    def substitution_members(self, decl: ElementDecl) -> list[ElementDecl]:
        """The element and every (transitive) substitute, abstract or not, sorted as EXI does."""
        out = [decl]  # abstract heads too: EXI gives them an event code
        for other in self.elements.values():
            head = other.substitution_head
            seen = set()
            while head is not None and head not in seen:
                seen.add(head)
                if head == decl.qname:
                    out.append(other)
                    break
                h = self.elements.get(head)
                head = h.substitution_head if h else None
        return sorted(out, key=lambda d: (d.qname[1], d.qname[0]))
