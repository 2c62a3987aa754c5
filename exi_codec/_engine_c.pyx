# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled EXI engine: the same grammar interpreter as _engine_py, over C arrays.

Each generated schema module's tables are flattened once into C arrays (_Tables). The decoder
reads bits straight from the input buffer and allocates each message object directly with its
type's tp_alloc (no intermediate list or tuple copy). The encoder writes into a growing C buffer
through a 64-bit accumulator. Behaviour, errors and error paths match the pure twin exactly.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.string cimport memcpy

from ._engine_py import fragment_code
from .errors import ExiDecodeError, ExiEncodeError

cdef extern from "Python.h":
    ctypedef struct _PyTypeObj "PyTypeObject":
        PyObject* (*tp_alloc)(_PyTypeObj*, Py_ssize_t) except NULL
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    int PyUnicode_4BYTE_KIND
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_UCS4 PyUnicode_READ_CHAR(object, Py_ssize_t)
    bint PyUnicode_Check(object)
    bint PyLong_Check(object)
    bint PyBool_Check(object)
    bint PyTuple_Check(object)
    bint PyList_Check(object)
    bint PyBytes_Check(object)
    bint PyObject_TypeCheck(object, _PyTypeObj*)
    void PyTuple_SET_ITEM(object, Py_ssize_t, PyObject*)
    PyObject* PyDict_GetItem(object, object)
    PyObject* Py_None

DEF MAX_DEPTH = 48
DEF MAX_UINT_OCTETS = 24  # 168 bits: X.509 serial numbers (xs:integer) are up to 20 bytes

# production kinds and datatype kinds: keep in step with _tables.py
DEF K_AT = 0
DEF K_SE = 1
DEF K_EE = 2
DEF K_CH = 3
DEF T_STRING = 0
DEF T_BOOL = 1
DEF T_UINT = 2
DEF T_INT = 3
DEF T_NBIT = 4
DEF T_ENUM = 5
DEF T_HEX = 6
DEF T_B64 = 7
DEF T_DECIMAL = 8

cdef struct Prod:
    int kind
    int field
    int arg
    int next

cdef struct State:
    int bits
    int nprods
    int first  # index of its first Prod

cdef struct Gram:
    int first_state
    int nfields
    int simple_dt  # datatype of a simple-type grammar, else -1
    unsigned long long list_mask  # bit i: field i is repeated

cdef struct DType:
    int kind
    int nbits
    bint has_min
    bint has_max
    long long min
    long long max
    long long min_len
    long long max_len  # -1: unbounded
    bint big  # bounds outside long long: compare in Python


cdef class _Tables:
    """A schema module's tables as C arrays, plus the Python objects they refer to."""
    cdef Prod* prods
    cdef State* states
    cdef Gram* grams
    cdef DType* dts
    cdef int ngrams
    cdef list classes      # grammar -> class or None
    cdef list names        # grammar -> tuple of field names
    cdef list dt_objs      # datatype -> tuple (the Python form, for big bounds)
    cdef list enum_members  # datatype -> tuple of members or None
    cdef list enum_index    # datatype -> dict value -> index or None
    cdef dict roots        # root class -> document index
    cdef object module

    def __dealloc__(self):
        PyMem_Free(self.prods)
        PyMem_Free(self.states)
        PyMem_Free(self.grams)
        PyMem_Free(self.dts)

    def __init__(self, module):
        cdef int nprods = 0, nstates = 0, i, j, k, si = 0, pi = 0
        grammars = module.GRAMMARS
        datatypes = module.DATATYPES
        self.module = module
        self.ngrams = len(grammars)
        for g in grammars:
            nstates += len(g[3])
            for st in g[3]:
                nprods += len(st[1])
        self.prods = <Prod*>PyMem_Malloc(max(nprods, 1) * sizeof(Prod))
        self.states = <State*>PyMem_Malloc(max(nstates, 1) * sizeof(State))
        self.grams = <Gram*>PyMem_Malloc(max(self.ngrams, 1) * sizeof(Gram))
        self.dts = <DType*>PyMem_Malloc(max(len(datatypes), 1) * sizeof(DType))
        if not self.prods or not self.states or not self.grams or not self.dts:
            raise MemoryError()
        self.classes = []
        self.names = []
        for i, g in enumerate(grammars):
            cls, names, flags, states = g
            if len(names) > 64:
                raise ValueError("grammar with more than 64 fields")
            self.classes.append(cls)
            self.names.append(names)
            self.grams[i].first_state = si
            self.grams[i].nfields = len(names)
            self.grams[i].simple_dt = states[0][1][0][2] if cls is None else -1
            self.grams[i].list_mask = 0
            for j, flag in enumerate(flags):
                if flag:
                    self.grams[i].list_mask |= (<unsigned long long>1) << j
            for bits, prods in states:
                self.states[si].bits = bits
                self.states[si].nprods = len(prods)
                self.states[si].first = pi
                for kind, field, arg, nxt in prods:
                    self.prods[pi].kind = kind
                    self.prods[pi].field = field
                    self.prods[pi].arg = arg
                    # next states are grammar-relative in the tables; make them absolute
                    self.prods[pi].next = nxt + self.grams[i].first_state if nxt >= 0 else -1
                    pi += 1
                si += 1
        self.dt_objs = list(datatypes)
        self.enum_members = []
        self.enum_index = []
        LL_MIN, LL_MAX = -(2 ** 63), 2 ** 63 - 1
        for i, dt in enumerate(datatypes):
            kind = dt[0]
            d = &self.dts[i]
            d.kind = kind
            d.nbits = 0
            d.has_min = d.has_max = False
            d.min = d.max = 0
            d.min_len = 0
            d.max_len = -1
            d.big = False
            members = None
            index = None
            if kind == T_NBIT:
                d.nbits = dt[1]
                d.has_min = d.has_max = True
                d.min = dt[2]
                d.max = dt[3]
            elif kind == T_UINT or kind == T_INT:
                lo, hi = dt[1], dt[2]
                if lo is not None:
                    if lo < LL_MIN or lo > LL_MAX:
                        d.big = True
                    else:
                        d.has_min = True
                        d.min = lo
                if hi is not None:
                    if hi < LL_MIN or hi > LL_MAX:
                        d.big = True
                    else:
                        d.has_max = True
                        d.max = hi
            elif kind == T_ENUM:
                d.nbits = dt[1]
                members = tuple(dt[2])
                index = {str(m.value): k for k, m in enumerate(members)}
            elif kind in (T_STRING, T_HEX, T_B64):
                d.min_len = dt[1]
                d.max_len = -1 if dt[2] is None else dt[2]
            self.enum_members.append(members)
            self.enum_index.append(index)
        self.roots = {e[3]: k for k, e in enumerate(module.DOCUMENT) if e[3] is not None}


cdef dict _CACHE = {}

cdef _Tables _tables(module):
    t = _CACHE.get(module)
    if t is None:
        t = _Tables(module)
        _CACHE[module] = t
    return <_Tables>t


cdef inline int _width(Py_ssize_t n):
    cdef int w = 0
    n -= 1
    while n > 0:
        w += 1
        n >>= 1
    return w


# -- decoding -----------------------------------------------------------------------------------
cdef struct Path:
    int depth
    int gram[MAX_DEPTH]
    int field[MAX_DEPTH]


cdef class _Reader:
    cdef const unsigned char* data
    cdef Py_ssize_t pos
    cdef Py_ssize_t end
    cdef bint strict
    cdef bint max_lengths  # enforce the maximum lengths only (implied by strict)
    cdef _Tables t
    cdef Path path
    cdef object root_name
    cdef object keep  # the bytes object that owns `data`

    cdef object error(self, str message, int extra_field=-1, int extra_gram=-1):
        names = [] if self.root_name is None else [self.root_name]
        cdef int i
        for i in range(self.path.depth):
            names.append(self.t.names[self.path.gram[i]][self.path.field[i]])
        if extra_field >= 0:
            names.append(self.t.names[extra_gram][extra_field])
        return ExiDecodeError(message, self.pos, names)

    cdef inline unsigned int bits(self, int n) except? 0xFFFFFFFF:
        # n <= 32
        cdef Py_ssize_t pos = self.pos
        cdef Py_ssize_t byte
        cdef int off, need, i
        cdef unsigned long long v = 0
        if n == 0:
            return 0
        if pos + n > self.end:
            raise self.error("unexpected end of stream")
        byte = pos >> 3
        off = pos & 7
        need = (off + n + 7) >> 3
        for i in range(need):
            v = (v << 8) | self.data[byte + i]
        self.pos = pos + n
        return <unsigned int>((v >> (need * 8 - off - n)) & ((1ULL << n) - 1))

    cdef object uint(self):
        """Unsigned integer: 7-bit groups, least significant first; C fast path up to 63 bits."""
        cdef unsigned long long value = 0
        cdef int shift = 0, octets = 0
        cdef unsigned int b
        while octets < 9:
            b = self.bits(8)
            value |= (<unsigned long long>(b & 0x7F)) << shift
            octets += 1
            if not (b & 0x80):
                return value
            shift += 7
        big = value
        while octets < MAX_UINT_OCTETS:
            b = self.bits(8)
            big |= (<object>(b & 0x7F)) << shift  # Python ints: past 63 bits
            octets += 1
            if not (b & 0x80):
                return big
            shift += 7
        raise self.error("unsigned integer too long")

    cdef inline long long small_uint(self, long long limit) except -2:
        """An unsigned integer used as a length or count, which must not exceed `limit`."""
        cdef unsigned long long value = 0
        cdef int shift = 0, octets = 0
        cdef unsigned int b
        while True:
            b = self.bits(8)
            if shift < 63:
                value |= (<unsigned long long>(b & 0x7F)) << shift
            octets += 1
            if not (b & 0x80):
                break
            shift += 7
            if octets >= MAX_UINT_OCTETS:
                raise self.error("unsigned integer too long")
        if shift >= 63 or value > <unsigned long long>limit:
            return limit + 1
        return <long long>value

    cdef object value(self, int dti, int fidx, int gid):
        cdef DType* d = &self.t.dts[dti]
        cdef int kind = d.kind
        cdef unsigned int u
        cdef long long n, i, start, avail
        cdef Py_ssize_t start_pos = self.pos
        cdef Py_UCS4* buf
        cdef char* out
        if kind == T_NBIT:
            u = self.bits(d.nbits)
            # values the n bits carry beyond the facet: lenient decoding accepts them
            if self.strict and <long long>u + d.min > d.max:
                raise self.error(f"value {<long long>u + d.min} above maximum {d.max}", fidx, gid)
            return <long long>u + d.min
        if kind == T_BOOL:
            return self.bits(1) == 1
        if kind == T_ENUM:
            u = self.bits(d.nbits)
            members = <tuple>self.t.enum_members[dti]
            if u >= <unsigned int>len(members):
                raise self.error(f"enumeration index {u} out of range", fidx, gid)
            return members[u]
        if kind == T_UINT or kind == T_INT:
            neg = False
            if kind == T_INT:
                neg = self.bits(1) == 1
            n = self.small_uint(0x7FFFFFFFFFFFFFFE)
            if n <= 0x7FFFFFFFFFFFFFFE and not d.big:
                # C fast path: value and bounds as long long, one PyLong at the end
                if neg:
                    n = -n - 1
                if (d.has_min and n < d.min) or (d.has_max and n > d.max):
                    raise self.error(f"value {n} out of range", fidx, gid)
                return n
            self.pos = start_pos
            if kind == T_INT:
                self.bits(1)
            v = self.uint()
            if neg:
                v = -v - 1
            if d.big:
                dt = self.t.dt_objs[dti]
                if (dt[1] is not None and v < dt[1]) or (dt[2] is not None and v > dt[2]):
                    raise self.error(f"value {v} out of range", fidx, gid)
            elif kind == T_NBIT and not self.strict:  # what a lenient decode accepted
                if v < d.min or v > d.min + (1 << d.nbits) - 1:
                    raise ExiEncodeError(f"value {v} does not fit {d.nbits} bits above {d.min}")
            elif (d.has_min and v < d.min) or (d.has_max and v > d.max):
                raise self.error(f"value {v} out of range", fidx, gid)
            return v
        avail = (self.end - self.pos) >> 3  # every character or byte takes at least 8 bits
        if kind == T_STRING:
            n = self.small_uint(avail + 2)
            avail = (self.end - self.pos) >> 3  # what is left after the length itself
            if n < 2:
                raise self.error("string table reference (not used by ISO 15118 codecs)",
                                 fidx, gid)
            n -= 2
            self.check_length(n, d, avail, fidx, gid)
            buf = <Py_UCS4*>PyMem_Malloc(max(n, 1) * sizeof(Py_UCS4))
            if not buf:
                raise MemoryError()
            try:
                for i in range(n):
                    start = self.small_uint(0x10FFFF)
                    if start > 0x10FFFF:
                        raise self.error("invalid code point", fidx, gid)
                    buf[i] = <Py_UCS4>start
                return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n)
            finally:
                PyMem_Free(buf)
        if kind == T_HEX or kind == T_B64:
            n = self.small_uint(avail)
            avail = (self.end - self.pos) >> 3  # what is left after the length itself
            self.check_length(n, d, avail, fidx, gid)
            if not (self.pos & 7):
                start = self.pos >> 3
                self.pos += n * 8
                return PyBytes_FromStringAndSize(<const char*>self.data + start, n)
            res = PyBytes_FromStringAndSize(NULL, n)
            out = PyBytes_AS_STRING(res)
            for i in range(n):
                out[i] = <char>self.bits(8)
            return res
        if kind == T_DECIMAL:
            neg = self.bits(1)
            integral = self.uint()
            frac = self.uint()
            return f"{'-' if neg else ''}{integral}.{str(frac)[::-1]}"
        raise self.error(f"unsupported datatype {kind}", fidx, gid)

    cdef int check_length(self, long long n, DType* d, long long avail, int fidx,
                          int gid) except -1:
        if self.max_lengths and d.max_len >= 0 and n > d.max_len:
            raise self.error(f"length {n} above maximum {d.max_len}", fidx, gid)
        if self.strict and n < d.min_len:
            raise self.error(f"length {n} below minimum {d.min_len}", fidx, gid)
        if n > avail:
            raise self.error(f"length {n} beyond the end of the stream", fidx, gid)
        return 0

    cdef object element(self, int gid, object cls):
        cdef Gram* g = &self.t.grams[gid]
        cdef State* st
        cdef Prod* p
        cdef int state, code, f, i, nf = g.nfields
        cdef unsigned long long lists = g.list_mask
        cdef PyObject* item
        if g.simple_dt >= 0:
            if self.bits(1):
                raise self.error("unsupported event (expected characters)")
            v = self.value(g.simple_dt, -1, -1)
            if self.bits(1):
                raise self.error("unsupported event (expected end of element)")
            return v
        if cls is None:
            cls = self.t.classes[gid]
        obj = <object>(<_PyTypeObj*>cls).tp_alloc(<_PyTypeObj*>cls, nf)
        Py_XDECREF(<PyObject*>obj)  # tp_alloc gave a new reference; `obj` holds its own
        state = g.first_state
        while True:
            st = &self.t.states[state]
            code = self.bits(st.bits)
            if code >= st.nprods:
                raise self.error("unsupported event (second-level event code: deviation "
                                 "from schema)")
            p = &self.t.prods[st.first + code]
            f = p.field
            if p.kind == K_SE:
                if self.path.depth >= MAX_DEPTH:
                    raise self.error("elements nested too deeply")
                self.path.gram[self.path.depth] = gid
                self.path.field[self.path.depth] = f
                self.path.depth += 1
                v = self.element(p.arg, None)
                self.path.depth -= 1
                if (lists >> f) & 1:
                    item = <PyObject*>PyTuple_GET_ITEM(obj, f)
                    if item == NULL:
                        lst = [v]
                        Py_INCREF(lst)
                        PyTuple_SET_ITEM(obj, f, <PyObject*>lst)
                    else:
                        (<list>item).append(v)
                else:
                    self.set_item(obj, f, v)
            elif p.kind == K_EE:
                break
            elif p.kind == K_AT or p.kind == K_CH:
                self.set_item(obj, f, self.value(p.arg, f, gid))
            else:
                raise self.error("wildcard or untyped content is not supported")
            state = p.next
        for i in range(nf):
            item = <PyObject*>PyTuple_GET_ITEM(obj, i)
            if (lists >> i) & 1:
                if item == NULL:
                    v = ()
                else:
                    v = tuple(<list>item)
                self.set_item(obj, i, v)
            elif item == NULL:
                Py_INCREF(None)
                PyTuple_SET_ITEM(obj, i, Py_None)
        return obj

    cdef inline void set_item(self, object obj, int i, object v):
        cdef PyObject* old = <PyObject*>PyTuple_GET_ITEM(obj, i)
        Py_INCREF(v)
        PyTuple_SET_ITEM(obj, i, <PyObject*>v)
        Py_XDECREF(old)

    cdef int finish(self) except -1:
        """After ED: padding bits, then tolerate trailing 0x00 bytes (seen from real cars)."""
        cdef Py_ssize_t i = (self.pos + 7) >> 3
        cdef Py_ssize_t n = self.end >> 3
        while i < n:
            if self.data[i]:
                raise ExiDecodeError("unexpected data after the end of the EXI stream", i * 8,
                                     [])
            i += 1
        return 0


cdef _Reader _reader(data, module, bint strict, bint max_lengths):
    cdef _Reader r = _Reader.__new__(_Reader)
    if not PyBytes_Check(data):
        data = bytes(data)
    r.keep = data
    r.data = <const unsigned char*>PyBytes_AS_STRING(data)
    r.end = PyBytes_GET_SIZE(data) * 8
    r.pos = 0
    r.strict = strict
    r.max_lengths = strict or max_lengths
    r.t = _tables(module)
    r.path.depth = 0
    r.root_name = None
    if r.end < 8 or r.bits(8) != 0x80:
        raise ExiDecodeError("not an EXI stream with the ISO 15118 header 0x80", 0, [])
    return r


def decode(data, module, bint strict=False, bint max_lengths=False):
    cdef _Reader r = _reader(data, module, strict, max_lengths)
    doc = module.DOCUMENT
    cdef unsigned int code = r.bits(_width(len(doc) + 1))
    if code >= <unsigned int>len(doc):
        raise ExiDecodeError("unknown root element", r.pos, [])
    _uri, name, gid, cls = doc[code]
    if cls is None:
        raise ExiDecodeError(f"{name} is not a message element", r.pos, [])
    r.root_name = name
    msg = r.element(gid, cls)
    r.finish()
    return msg


def decode_fragment(data, module, tuple table, bint strict=False, bint max_lengths=False):
    cdef _Reader r = _reader(data, module, strict, max_lengths)
    cdef int n = _width(len(table) + 2)
    cdef unsigned int code = r.bits(n)
    if code >= <unsigned int>len(table) or table[code][2] < 0 or \
            r.t.classes[table[code][2]] is None:
        raise ExiDecodeError("unsupported fragment element (signed content is complex-typed)",
                             r.pos, [])
    _uri, name, gid = table[code]
    root = None
    for entry in module.DOCUMENT:
        if entry[1] == name and entry[2] == gid:
            root = entry[3]
    r.root_name = name
    value = r.element(gid, root)
    if r.bits(n) != <unsigned int>(len(table) + 1):
        raise ExiDecodeError("expected the end of the fragment (one element per fragment)",
                             r.pos, [])
    r.finish()
    return name, value


# -- encoding -----------------------------------------------------------------------------------
class _EncodeFailure(Exception):
    pass


cdef class _Writer:
    cdef unsigned char* buf
    cdef Py_ssize_t len
    cdef Py_ssize_t cap
    cdef unsigned long long acc
    cdef int nacc
    cdef bint strict
    cdef _Tables t

    def __dealloc__(self):
        PyMem_Free(self.buf)

    cdef int grow(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef unsigned char* nb
        while self.len + extra > cap:
            cap = cap * 2 if cap else 256
        if cap != self.cap:
            nb = <unsigned char*>PyMem_Realloc(self.buf, cap)
            if not nb:
                raise MemoryError()
            self.buf = nb
            self.cap = cap
        return 0

    cdef inline int bits(self, unsigned long long value, int n) except -1:
        # n <= 32; the accumulator keeps fewer than 8 pending bits between calls
        if n == 0:
            return 0
        self.acc = (self.acc << n) | value
        self.nacc += n
        if self.nacc >= 8:
            if self.len + 8 > self.cap:
                self.grow(8)
            while self.nacc >= 8:
                self.nacc -= 8
                self.buf[self.len] = <unsigned char>(self.acc >> self.nacc)
                self.len += 1
            self.acc &= (1ULL << self.nacc) - 1
        return 0

    cdef int uint(self, object v) except -1:
        cdef unsigned long long x
        if v < 0:
            raise ExiEncodeError(f"negative value {v} for an unsigned integer")
        if v <= 0x7FFFFFFFFFFFFFFF:
            x = v
            while x >= 0x80:
                self.bits((x & 0x7F) | 0x80, 8)
                x >>= 7
            self.bits(x, 8)
            return 0
        while True:
            low = v & 0x7F
            v >>= 7
            if v:
                self.bits(low | 0x80, 8)
            else:
                self.bits(low, 8)
                return 0

    cdef inline int small_uint(self, unsigned long long x) except -1:
        while x >= 0x80:
            self.bits((x & 0x7F) | 0x80, 8)
            x >>= 7
        self.bits(x, 8)
        return 0

    cdef int length(self, Py_ssize_t n, DType* d) except -1:
        if self.strict:
            if d.max_len >= 0 and n > d.max_len:
                raise ExiEncodeError(f"length {n} above the schema's maximum {d.max_len}")
            if n < d.min_len:
                raise ExiEncodeError(f"length {n} below the schema's minimum {d.min_len}")
        return 0

    cdef int value(self, int dti, object v) except -1:
        cdef DType* d = &self.t.dts[dti]
        cdef int kind = d.kind
        cdef long long x
        cdef Py_ssize_t n, i
        cdef Py_UCS4 c
        cdef const unsigned char* src
        cdef PyObject* idx
        if kind == T_NBIT or kind == T_UINT or kind == T_INT:
            if not PyLong_Check(v) or PyBool_Check(v):
                raise ExiEncodeError(f"expected an integer, got {type(v).__name__}")
            if d.big:
                dt = self.t.dt_objs[dti]
                lo, hi = dt[1], dt[2]
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    raise ExiEncodeError(f"value {v} outside the schema's range [{lo}, {hi}]")
            elif kind == T_NBIT and not self.strict:  # what a lenient decode accepted
                if v < d.min or v > d.min + (1 << d.nbits) - 1:
                    raise ExiEncodeError(f"value {v} does not fit {d.nbits} bits above {d.min}")
            elif (d.has_min and v < d.min) or (d.has_max and v > d.max):
                lo = d.min if d.has_min else None
                hi = d.max if d.has_max else None
                raise ExiEncodeError(f"value {v} outside the schema's range [{lo}, {hi}]")
            if kind == T_NBIT:
                x = v
                self.bits(<unsigned long long>(x - d.min), d.nbits)
            elif kind == T_UINT:
                self.uint(v)
            elif v < 0:
                self.bits(1, 1)
                self.uint(-v - 1)
            else:
                self.bits(0, 1)
                self.uint(v)
        elif kind == T_BOOL:
            if not PyBool_Check(v):
                raise ExiEncodeError(f"expected a bool, got {type(v).__name__}")
            self.bits(1 if v is True else 0, 1)
        elif kind == T_ENUM:
            idx = NULL
            if PyUnicode_Check(v):
                idx = PyDict_GetItem(self.t.enum_index[dti], v)
            if idx == NULL:
                enum_cls = self.t.dt_objs[dti][2]
                raise ExiEncodeError(f"{v!r} is not a value of {enum_cls.__name__}")
            self.bits(<object>idx, d.nbits)
        elif kind == T_STRING:
            if not PyUnicode_Check(v):
                raise ExiEncodeError(f"expected a str, got {type(v).__name__}")
            n = PyUnicode_GET_LENGTH(v)
            self.length(n, d)
            self.small_uint(n + 2)
            for i in range(n):
                c = PyUnicode_READ_CHAR(v, i)
                self.small_uint(c)
        elif kind == T_HEX or kind == T_B64:
            if not PyBytes_Check(v):
                if isinstance(v, (bytearray, memoryview)):
                    v = bytes(v)
                else:
                    raise ExiEncodeError(f"expected bytes, got {type(v).__name__}")
            n = PyBytes_GET_SIZE(v)
            self.length(n, d)
            self.small_uint(n)
            src = <const unsigned char*>PyBytes_AS_STRING(v)
            if self.nacc == 0:
                self.grow(n)
                memcpy(self.buf + self.len, src, n)
                self.len += n
            else:
                for i in range(n):
                    self.bits(src[i], 8)
        elif kind == T_DECIMAL:
            text = str(v)
            neg = text.startswith("-")
            integral, _, frac = text.lstrip("+-").partition(".")
            self.bits(1 if neg else 0, 1)
            self.uint(int(integral or "0"))
            self.uint(int(frac[::-1] or "0"))
        else:
            raise ExiEncodeError(f"unsupported datatype {kind}")
        return 0

    cdef int element(self, int gid, object obj) except -1:
        cdef Gram* g = &self.t.grams[gid]
        cdef State* st
        cdef Prod* p
        cdef int state, code, chosen, f, nf = g.nfields
        cdef unsigned long long lists = g.list_mask
        cdef int used[64]
        cdef Py_ssize_t ln
        cdef PyObject* item
        if g.simple_dt >= 0:
            self.bits(0, 1)
            self.value(g.simple_dt, obj)
            self.bits(0, 1)
            return 0
        cls = self.t.classes[gid]
        if not PyObject_TypeCheck(obj, <_PyTypeObj*>cls):
            raise ExiEncodeError(f"expected {cls.__name__}, got {type(obj).__name__}")
        for f in range(nf):
            used[f] = 0
        state = g.first_state
        while True:
            st = &self.t.states[state]
            chosen = -1
            for code in range(st.nprods):
                p = &self.t.prods[st.first + code]
                if p.kind == K_EE:
                    chosen = code
                    break
                if p.kind == K_SE or p.kind == K_AT or p.kind == K_CH:
                    item = <PyObject*>PyTuple_GET_ITEM(obj, p.field)
                    if item == Py_None:
                        continue
                    if (lists >> p.field) & 1:
                        if used[p.field] < _seq_len(<object>item):
                            chosen = code
                            break
                    elif not used[p.field]:
                        chosen = code
                        break
            if chosen < 0:
                names = self.t.names[gid]
                expected = [names[self.t.prods[st.first + code].field]
                            for code in range(st.nprods)
                            if self.t.prods[st.first + code].field >= 0]
                raise ExiEncodeError(
                    f"missing required element; expected one of {expected}",
                    [expected[0]] if len(set(expected)) == 1 else [])
            p = &self.t.prods[st.first + chosen]
            self.bits(chosen, st.bits)
            if p.kind == K_EE:
                for f in range(nf):
                    item = <PyObject*>PyTuple_GET_ITEM(obj, f)
                    if item == Py_None:
                        continue
                    if ((lists >> f) & 1 and used[f] < _seq_len(<object>item)) or (
                            not (lists >> f) & 1 and not used[f]):
                        raise ExiEncodeError(
                            "value not allowed here (choice already taken, too many items, or "
                            "out of sequence)", [self.t.names[gid][f]])
                return 0
            f = p.field
            v = <object>PyTuple_GET_ITEM(obj, f)
            try:
                if p.kind == K_SE:
                    if (lists >> f) & 1:
                        v = v[used[f]]
                    self.element(p.arg, v)
                else:
                    self.value(p.arg, v)
            except ExiEncodeError as e:
                e.path.insert(0, self.t.names[gid][f])
                raise
            used[f] += 1
            state = p.next

    cdef bytes getvalue(self):
        if self.nacc:
            self.bits(0, 8 - self.nacc)
        return PyBytes_FromStringAndSize(<const char*>self.buf, self.len)


cdef inline Py_ssize_t _seq_len(object v) except -1:
    if PyTuple_Check(v):
        return PyTuple_GET_SIZE(v)
    if PyList_Check(v):
        return PyList_GET_SIZE(v)
    raise ExiEncodeError(f"expected a tuple of items, got {type(v).__name__}")


cdef _Writer _writer(module, bint strict):
    cdef _Writer w = _Writer.__new__(_Writer)
    w.t = _tables(module)
    w.strict = strict
    w.grow(64)
    w.bits(0x80, 8)
    return w


def encode(msg, bint strict=True):
    module = getattr(type(msg), "_exi_module", None)
    if module is None:
        raise ExiEncodeError(f"{type(msg).__name__} is not a message (root element) type")
    cdef _Writer w = _writer(module, strict)
    code = w.t.roots.get(type(msg))
    if code is None:
        raise ExiEncodeError(f"{type(msg).__name__} is not a message (root element) type")
    _uri, name, gid, _cls = module.DOCUMENT[code]
    w.bits(code, _width(len(module.DOCUMENT) + 1))
    try:
        w.element(gid, msg)
    except ExiEncodeError as e:
        e.path.insert(0, name)
        raise
    return w.getvalue()  # DocEnd's ED takes zero bits


def encode_fragment(str name, value, module, tuple table, bint strict=True):
    cdef int code = fragment_code(name, value, table)
    cdef int n = _width(len(table) + 2)
    cdef _Writer w = _writer(module, strict)
    w.bits(code, n)
    try:
        w.element(table[code][2], value)
    except ExiEncodeError as e:
        e.path.insert(0, name)
        raise
    w.bits(len(table) + 1, n)
    return w.getvalue()
