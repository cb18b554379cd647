"""Meter files → readings: plain ``timestamp,kwh`` CSV, Green Button "Download My Data" CSV and ESPI XML.

Formats (docs/methodology.md, "Bills from meter readings"; research note turn2_anchors.md §3):

* **plain CSV** – header ``timestamp,kwh`` (``start`` is accepted for ``timestamp``); timestamps are
  ISO-8601, with an offset (an instant) or without (local wall time in the request's time zone).
* **Green Button CSV, Opower layout** (PG&E, ComEd, PECO …) – optional preamble lines, then
  ``TYPE,DATE,START TIME,END TIME,USAGE (kWh)|USAGE,UNITS|IMPORT (kWh),EXPORT (kWh),…``; ``END TIME`` is
  the inclusive last minute (``00:14`` ends a 15-minute reading); dates ``YYYY-MM-DD`` or ``M/D/YYYY``.
* **Green Button CSV, SDG&E layout** – preamble, then ``Meter Number,Date,Start Time,Duration,Consumption,
  Generation,Net``; dates ``M/D/YYYY``, times ``12:00 AM``, duration in minutes; kWh = ``Net`` when given,
  else ``Consumption − Generation``.
* **Green Button CSV, SCE layout** – per-day blocks headed ``Energy  Delivered time period,…`` (or
  ``Received``: exported, negative) with rows ``"2026-11-01 00:00:00 to 2026-11-01 00:15:00","0.180",""``.
* **ESPI XML** (NAESB REQ.21, an Atom feed) – every ``IntervalBlock``'s ``IntervalReading``:
  ``timePeriod/start`` (UTC epoch seconds), ``timePeriod/duration`` (s), ``value`` in the linked
  ``ReadingType``'s ``uom`` (72 = Wh) × 10^``powerOfTenMultiplier``; ``flowDirection`` 19 (reverse) is
  export. Only energy readings in Wh are billed; other reading types (demand in W, gas) are skipped.

CSV wall times are local: a time that occurs twice (the hour repeated when DST ends) takes its first
offset the first time it is seen and the second offset the next time; a time that does not exist (the
hour skipped when DST starts) is refused. Every error names the line and the problem.
"""

from __future__ import annotations

import csv
import re
import xml.parsers.expat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from powermeter.methodology.billing import Reading

MAX_READINGS = 105_408  # a leap year of 5-minute readings
MAX_LINE_CHARS = 4096
MAX_KWH = Decimal(1_000_000)  # per reading, as for JSON readings
MAX_XML_DEPTH = 32  # ESPI nests 6 deep (feed/entry/content/IntervalBlock/IntervalReading/timePeriod)
POWER_OF_TEN_RANGE = (-12, 12)  # UnitMultiplierKind: pico … tera


class MeterFileError(ValueError):
    """The file cannot be read; ``line`` (1-based, 0 when unknown) and the problem."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message


@dataclass
class MeterData:
    format: str  # csv | greenbutton-csv-opower | greenbutton-csv-sdge | greenbutton-csv-sce | greenbutton-espi
    readings: list[Reading]
    interval_minutes: int | None  # from the file's own durations, when it states them
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# helpers


def _number(raw: str, line: int, column: str) -> Decimal | None:
    s = raw.strip().replace("$", "").replace(",", "").replace('"', "").strip()
    if not s:
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise MeterFileError(line, f"{column} {raw.strip()!r} is not a number") from None
    if not d.is_finite():
        raise MeterFileError(line, f"{column} {raw.strip()!r} is not a finite number")
    return d


class _LocalClock:
    """Local wall time → UTC instant; repeated (fall-back) times by order, skipped (spring-forward) refused."""

    def __init__(self, tz: ZoneInfo | None) -> None:
        self.tz = tz
        self.seen: set[datetime] = set()

    def instant(self, wall: datetime, line: int) -> datetime:
        if wall.tzinfo is not None:
            return wall.astimezone(UTC)
        tz = self.tz
        if tz is None:
            raise MeterFileError(
                line, "times have no UTC offset: give timezone (an IANA name such as America/Los_Angeles)"
            )
        u0 = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        u1 = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if u0 == u1:
            return u0
        if u0.astimezone(tz).replace(tzinfo=None) != wall:
            raise MeterFileError(
                line, f"{wall:%Y-%m-%d %H:%M} does not exist in {tz.key} (clocks jump forward that night)"
            )
        if wall in self.seen:
            return u1
        self.seen.add(wall)
        return u0


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p")


def _date(raw: str, line: int) -> date:
    s = raw.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise MeterFileError(line, f"date {s!r} is not YYYY-MM-DD or M/D/YYYY")


def _time(raw: str, line: int) -> tuple[int, int]:
    s = raw.strip().upper()
    for fmt in _TIME_FORMATS:
        try:
            t = datetime.strptime(s, fmt)
        except ValueError:
            continue
        return t.hour, t.minute
    raise MeterFileError(line, f"time {raw.strip()!r} is not HH:MM or H:MM AM/PM")


def _iso(raw: str, line: int) -> datetime:
    s = raw.strip()
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise MeterFileError(line, f"timestamp {s!r} is not ISO-8601 (e.g. 2026-11-01T00:00:00-07:00)") from None


def _add(out: list[Reading], r: Reading, line: int) -> None:
    if not -MAX_KWH <= r.kwh <= MAX_KWH:
        raise MeterFileError(line, f"{r.kwh} kWh is outside ±{MAX_KWH:,} kWh for one reading")
    if len(out) >= MAX_READINGS:
        raise MeterFileError(line, f"more than {MAX_READINGS:,} readings; split the file")
    out.append(r)


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with their 1-based line numbers (a quoted field may not span lines in these formats)."""
    for n, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE_CHARS:
            raise MeterFileError(n, f"line longer than {MAX_LINE_CHARS} characters")
        if not raw.strip():
            yield n, []
            continue
        try:
            row = next(csv.reader([raw]))
        except csv.Error as exc:
            raise MeterFileError(n, f"not valid CSV: {exc}") from None
        yield n, row


def _norm(cell: str) -> str:
    return " ".join(cell.replace("\ufeff", "").strip().upper().split())


# ---------------------------------------------------------------------------------------------
# CSV


def parse_csv(text: str, tz: ZoneInfo | None) -> MeterData:
    """Detect the CSV layout by its header row (after any preamble) and read every reading."""
    rows = list(_rows(text.lstrip("\ufeff")))
    for idx, (n, row) in enumerate(rows):
        cells = [_norm(c) for c in row]
        if not cells:
            continue
        first = cells[0]
        if "TYPE" in cells and "DATE" in cells and "START TIME" in cells:
            return _opower(rows[idx + 1 :], cells, n, tz)
        if "METER NUMBER" in cells and "START TIME" in cells and "DURATION" in cells:
            return _sdge(rows[idx + 1 :], cells, n, tz)
        if first.startswith("ENERGY") and "TIME PERIOD" in first:
            return _sce(rows[idx:], tz)
        if first in ("TIMESTAMP", "START", "START_TIME", "DATETIME") and len(cells) >= 2:
            return _plain(rows[idx + 1 :], cells, n, tz)
        if idx >= 60:
            break
    raise MeterFileError(
        1,
        "unrecognised CSV: expected a header 'timestamp,kwh', a Green Button header 'TYPE,DATE,START TIME,END "
        "TIME,USAGE (kWh),…', an SDG&E header 'Meter Number,Date,Start Time,Duration,…' or SCE blocks "
        "'Energy Delivered time period,…'",
    )


def _col(cells: list[str], *names: str) -> int | None:
    for name in names:
        if name in cells:
            return cells.index(name)
    return None


def _plain(rows: list[tuple[int, list[str]]], header: list[str], hline: int, tz: ZoneInfo | None) -> MeterData:
    k = _col(header, "KWH", "VALUE", "USAGE", "USAGE (KWH)", "ENERGY_KWH")
    if k is None:
        raise MeterFileError(hline, "header needs a kwh column: 'timestamp,kwh'")
    clock = _LocalClock(tz)
    out: list[Reading] = []
    for n, row in rows:
        if not row:
            continue
        if len(row) <= k:
            raise MeterFileError(n, f"expected at least {k + 1} columns, got {len(row)}")
        kwh = _number(row[k], n, "kwh")
        if kwh is None:
            continue
        _add(out, Reading(clock.instant(_iso(row[0], n), n), kwh, n), n)
    if not out:
        raise MeterFileError(hline, "no readings after the header")
    return MeterData("csv", out, None)


def _opower(rows: list[tuple[int, list[str]]], header: list[str], hline: int, tz: ZoneInfo | None) -> MeterData:
    i_type, i_date, i_start = header.index("TYPE"), header.index("DATE"), header.index("START TIME")
    i_end = _col(header, "END TIME")
    i_usage = _col(header, "USAGE (KWH)", "USAGE")
    i_units = _col(header, "UNITS")
    i_import = _col(header, "IMPORT (KWH)")
    i_export = _col(header, "EXPORT (KWH)")
    if i_usage is None and i_import is None:
        raise MeterFileError(hline, "header has no USAGE (kWh), USAGE or IMPORT (kWh) column")
    if i_end is None:
        raise MeterFileError(hline, "header has no END TIME column (daily gas exports cannot be billed)")
    clock = _LocalClock(tz)
    out: list[Reading] = []
    durations: set[int] = set()
    width = len(header)
    need = max(i for i in (i_type, i_date, i_start, i_end, i_usage, i_import) if i is not None) + 1
    for n, row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) < need:
            raise MeterFileError(n, f"expected {width} columns like the header on line {hline}, got {len(row)}")
        kind = row[i_type].strip().lower()
        if "gas" in kind:
            raise MeterFileError(n, f"{row[i_type].strip()!r} rows are gas, not electricity; export the electric data")
        if i_units is not None and row[i_units].strip() and row[i_units].strip().lower() != "kwh":
            raise MeterFileError(n, f"UNITS is {row[i_units].strip()!r}; only kWh can be billed")
        d = _date(row[i_date], n)
        sh, sm = _time(row[i_start], n)
        eh, em = _time(row[i_end], n)
        minutes = (eh * 60 + em) - (sh * 60 + sm) + 1
        if minutes <= 0:
            minutes += 24 * 60
        durations.add(minutes)
        if i_import is not None:
            imp = _number(row[i_import], n, "IMPORT (kWh)")
            exp = _number(row[i_export], n, "EXPORT (kWh)") if i_export is not None else None
            if imp is None and exp is None:
                continue
            kwh = (imp or Decimal(0)) - (exp or Decimal(0))
        else:
            assert i_usage is not None  # noqa: S101 (checked above)
            u = _number(row[i_usage], n, header[i_usage])
            if u is None:
                continue
            kwh = u
        wall = datetime(d.year, d.month, d.day, sh, sm)
        _add(out, Reading(clock.instant(wall, n), kwh, n), n)
    if not out:
        raise MeterFileError(hline, "no readings after the header")
    return MeterData("greenbutton-csv-opower", out, durations.pop() if len(durations) == 1 else None)


def _sdge(rows: list[tuple[int, list[str]]], header: list[str], hline: int, tz: ZoneInfo | None) -> MeterData:
    i_date, i_start, i_dur = header.index("DATE"), header.index("START TIME"), header.index("DURATION")
    i_cons = _col(header, "CONSUMPTION")
    i_gen = _col(header, "GENERATION")
    i_net = _col(header, "NET")
    if i_cons is None and i_net is None:
        raise MeterFileError(hline, "header has no Consumption or Net column")
    clock = _LocalClock(tz)
    out: list[Reading] = []
    durations: set[int] = set()
    for n, row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) < len(header):
            raise MeterFileError(n, f"expected {len(header)} columns like the header on line {hline}, got {len(row)}")
        d = _date(row[i_date], n)
        h, m = _time(row[i_start], n)
        dur = _number(row[i_dur], n, "Duration")
        if dur is None or dur <= 0 or dur != dur.to_integral_value():
            raise MeterFileError(n, f"Duration {row[i_dur].strip()!r} must be a whole number of minutes")
        durations.add(int(dur))
        net = _number(row[i_net], n, "Net") if i_net is not None else None
        if net is None:
            cons = _number(row[i_cons], n, "Consumption") if i_cons is not None else None
            gen = _number(row[i_gen], n, "Generation") if i_gen is not None else None
            if cons is None and gen is None:
                continue
            net = (cons or Decimal(0)) - (gen or Decimal(0))
        _add(out, Reading(clock.instant(datetime(d.year, d.month, d.day, h, m), n), net, n), n)
    if not out:
        raise MeterFileError(hline, "no readings after the header")
    return MeterData("greenbutton-csv-sdge", out, durations.pop() if len(durations) == 1 else None)


_SCE_TIME = r"\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}(?::\d{2})?"
_SCE_PERIOD = re.compile(rf"^\s*({_SCE_TIME})\s+to\s+({_SCE_TIME})\s*$")


def _sce(rows: list[tuple[int, list[str]]], tz: ZoneInfo | None) -> MeterData:
    clock_by_sign = {1: _LocalClock(tz), -1: _LocalClock(tz)}
    sign = 1
    out: list[Reading] = []
    durations: set[int] = set()
    at: dict[tuple[int, datetime], int] = {}  # (sign, instant) → index in out
    merged: list[str] = []
    for n, row in rows:
        if not row:
            continue
        first = _norm(row[0])
        if first.startswith("ENERGY") and "TIME PERIOD" in first:
            sign = -1 if "RECEIVED" in first else 1
            continue
        m = _SCE_PERIOD.match(row[0])
        if m is None:
            continue  # block titles ("Data for period starting: …") and notes
        if len(row) < 2:
            raise MeterFileError(n, "expected the usage after the time period")
        a, b = _iso(m.group(1), n), _iso(m.group(2), n)
        mins = int((b - a).total_seconds() // 60)
        if mins <= 0:
            mins += 24 * 60  # "23:45 to 00:00" written with the same date
        durations.add(mins)
        kwh = _number(row[1], n, "usage")
        if kwh is None:
            continue
        instant = clock_by_sign[sign].instant(a, n)
        prev = at.get((sign, instant))
        if prev is not None and tz is not None and _day_hours(a.date(), tz) == 25:
            # SCE labels the repeated hour of a fall-back day with a later, unambiguous hour (02:00 twice, not
            # 01:00): which hour repeated is not recorded, so the energy is added to the labelled interval.
            r0 = out[prev]
            out[prev] = Reading(r0.start, r0.kwh + kwh * sign, r0.ref)
            merged.append(f"line {n} added to line {r0.ref} ({a:%Y-%m-%d %H:%M} listed twice)")
            continue
        at[(sign, instant)] = len(out)
        _add(out, Reading(instant, kwh * sign, n), n)
    if not out:
        raise MeterFileError(1, "no readings in the SCE blocks")
    if any(r.kwh < 0 for r in out):
        out = _net_by_start(out)
    notes = []
    if merged:
        notes.append(
            f"{len(merged)} reading(s) of a fall-back day are labelled with an hour that occurs once; each was "
            f"added to the first reading with that label (e.g. {merged[0]})"
        )
    return MeterData("greenbutton-csv-sce", out, durations.pop() if len(durations) == 1 else None, notes)


def _day_hours(d: date, tz: ZoneInfo) -> float:
    a = datetime.combine(d, datetime.min.time(), tz).astimezone(UTC)
    b = datetime.combine(d + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    return (b - a).total_seconds() / 3600


def _net_by_start(readings: list[Reading]) -> list[Reading]:
    """Delivered and received blocks for the same interval → one net reading (named by its first line)."""
    net: dict[datetime, Reading] = {}
    for r in readings:
        prev = net.get(r.start)
        net[r.start] = r if prev is None else Reading(r.start, prev.kwh + r.kwh, prev.ref)
    return list(net.values())


# ---------------------------------------------------------------------------------------------
# ESPI XML


class _Node:
    """An XML element: local name (namespace dropped), line, attributes, children and text.

    Few containers per node (a year of 15-minute ESPI readings is ~200,000 elements): no attribute dict when
    there are none, no child list for a leaf, and text kept only until the first child (what lies between
    children is layout whitespace)."""

    __slots__ = ("_attrs", "_children", "line", "tag", "text")

    _NO_ATTRS: dict[str, str] = {}  # noqa: RUF012 (shared, never written)
    _NO_CHILDREN: tuple[_Node, ...] = ()

    def __init__(self, tag: str, line: int, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.line = line
        self._attrs = attrs or None
        self._children: list[_Node] | None = None
        self.text = ""

    @property
    def attrs(self) -> dict[str, str]:
        return self._attrs or self._NO_ATTRS

    @property
    def children(self) -> list[_Node] | tuple[_Node, ...]:
        return self._children if self._children is not None else self._NO_CHILDREN

    def add(self, child: _Node) -> None:
        if self._children is None:
            self._children = [child]
        else:
            self._children.append(child)

    def child(self, tag: str) -> _Node | None:
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def iter(self, tag: str) -> Iterator[_Node]:
        if self.tag == tag:
            yield self
        for c in self.children:
            yield from c.iter(tag)


def _parse_xml(data: bytes) -> _Node:
    """A small tree with line numbers; DOCTYPE/entity declarations are refused (no entity expansion attacks)."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    root: list[_Node] = []
    stack: list[_Node] = []
    local_names: dict[str, str] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = local_names.get(name)
        if tag is None:
            tag = local_names[name] = name.rsplit("}", 1)[-1]
        if len(stack) >= MAX_XML_DEPTH:
            raise MeterFileError(parser.CurrentLineNumber, f"elements nested deeper than {MAX_XML_DEPTH} levels")
        node = _Node(tag, parser.CurrentLineNumber, attrs)
        if stack:
            stack[-1].add(node)
        else:
            root.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            node = stack[-1]
            if node._children is None:  # text before the first child only (the rest is layout)
                node.text += text

    def doctype(*_args: object) -> None:
        raise MeterFileError(parser.CurrentLineNumber, "DOCTYPE declarations are not accepted in ESPI files")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise MeterFileError(exc.lineno, f"not well-formed XML: {xml.parsers.expat.ErrorString(exc.code)}") from None
    if not root:
        raise MeterFileError(1, "empty XML document")
    return root[0]


def _int(node: _Node | None, what: str, line: int, default: int | None = None) -> int:
    if node is None:
        if default is not None:
            return default
        raise MeterFileError(line, f"{what} is missing")
    s = node.text.strip()
    try:
        return int(s)
    except ValueError:
        raise MeterFileError(node.line, f"{what} {s!r} is not an integer") from None


@dataclass(frozen=True)
class _ReadingType:
    uom: int | None
    power_of_ten: int
    flow: int | None
    kind: int | None
    interval_length: int | None
    line: int


def _reading_type(node: _Node) -> _ReadingType:
    def opt(tag: str) -> int | None:
        c = node.child(tag)
        return None if c is None else _int(c, tag, node.line)

    p10 = opt("powerOfTenMultiplier") or 0
    lo, hi = POWER_OF_TEN_RANGE
    if not lo <= p10 <= hi:
        raise MeterFileError(node.line, f"powerOfTenMultiplier {p10} is outside {lo}…{hi}")
    return _ReadingType(
        uom=opt("uom"),
        power_of_ten=p10,
        flow=opt("flowDirection"),
        kind=opt("kind"),
        interval_length=opt("intervalLength"),
        line=node.line,
    )


def _links(entry: _Node) -> tuple[str | None, str | None, list[str]]:
    self_href = up = None
    related: list[str] = []
    for link in entry.children:
        if link.tag != "link":
            continue
        rel, href = link.attrs.get("rel"), link.attrs.get("href", "")
        if rel == "self":
            self_href = href
        elif rel == "up":
            up = href
        elif rel == "related":
            related.append(href)
    return self_href, up, related


WH_UOM = 72
ENERGY_KIND = 12
REVERSE_FLOW = 19


def parse_espi(data: bytes) -> MeterData:
    """Every energy ``IntervalReading`` of an ESPI document (Atom feed, entry, or bare ESPI elements)."""
    root = _parse_xml(data)
    types_by_href: dict[str, _ReadingType] = {}
    all_types: list[_ReadingType] = []
    block_type: dict[int, _ReadingType] = {}  # id(IntervalBlock node) → its ReadingType
    entries = list(root.iter("entry"))
    meter_links: list[tuple[str | None, list[str]]] = []
    blocks_by_up: list[tuple[str | None, _Node]] = []
    for e in entries:
        content = e.child("content")
        if content is None:
            continue
        self_href, up, related = _links(e)
        for c in content.children:
            if c.tag == "ReadingType":
                rt = _reading_type(c)
                all_types.append(rt)
                if self_href:
                    types_by_href[self_href] = rt
            elif c.tag == "MeterReading":
                meter_links.append((self_href, related))
            elif c.tag == "IntervalBlock":
                blocks_by_up.append((up, c))
    if not entries:  # bare ESPI elements
        all_types = [_reading_type(n) for n in root.iter("ReadingType")]
        blocks_by_up = [(None, b) for b in root.iter("IntervalBlock")]
    # MeterReading → ReadingType, and the MeterReading's IntervalBlock collection → the same type
    collection_type: dict[str, _ReadingType] = {}
    for self_href, related in meter_links:
        rts = [types_by_href[h] for h in related if h in types_by_href]
        if len(rts) == 1:
            for h in related:
                if h not in types_by_href:
                    collection_type[h.rstrip("/")] = rts[0]
            if self_href:
                collection_type[self_href.rstrip("/") + "/IntervalBlock"] = rts[0]
    for up, b in blocks_by_up:
        found = collection_type.get((up or "").rstrip("/"))
        if found is None and len(all_types) == 1:
            found = all_types[0]
        if found is None:
            raise MeterFileError(
                b.line, "cannot tell which ReadingType this IntervalBlock uses (no MeterReading link, several types)"
            )
        block_type[id(b)] = found
    if not blocks_by_up:
        raise MeterFileError(1, "no IntervalBlock in the document (is this a Green Button ESPI file?)")

    out: list[Reading] = []
    durations: set[int] = set()
    skipped: set[str] = set()
    for _up, b in blocks_by_up:
        rt = block_type[id(b)]
        if rt.uom != WH_UOM or (rt.kind is not None and rt.kind != ENERGY_KIND):
            skipped.add(f"ReadingType on line {rt.line} (uom {rt.uom}, kind {rt.kind})")
            continue
        scale = Decimal(10) ** rt.power_of_ten / 1000  # Wh → kWh
        sign = -1 if rt.flow == REVERSE_FLOW else 1
        interval = b.child("interval")
        next_start: int | None = None
        default_dur = rt.interval_length
        if interval is not None:
            next_start = _int(interval.child("start"), "interval/start", interval.line, default=-1)
            if next_start < 0:
                next_start = None
        for ir in b.children:
            if ir.tag != "IntervalReading":
                continue
            tp = ir.child("timePeriod")
            if tp is not None:
                start = _int(tp.child("start"), "timePeriod/start", tp.line)
                dur = _int(tp.child("duration"), "timePeriod/duration", tp.line, default=default_dur or 0)
            else:
                if next_start is None or not default_dur:
                    raise MeterFileError(
                        ir.line, "IntervalReading has no timePeriod and the block gives no start/intervalLength"
                    )
                start, dur = next_start, default_dur
            if dur <= 0:
                raise MeterFileError(ir.line, f"timePeriod/duration must be > 0 seconds, got {dur}")
            next_start = start + dur
            durations.add(dur)
            v = ir.child("value")
            if v is None:
                continue  # cost-only readings carry no energy
            value = _int(v, "value", ir.line)
            try:
                instant = datetime.fromtimestamp(start, tz=UTC)
            except (OverflowError, OSError, ValueError):
                raise MeterFileError(tp.line if tp else ir.line, f"timePeriod/start {start} is out of range") from None
            _add(out, Reading(instant, Decimal(value) * scale * sign, v.line), ir.line)
    if not out:
        what = f"; skipped {', '.join(sorted(skipped))}" if skipped else ""
        raise MeterFileError(1, f"no energy readings in Wh (ReadingType uom 72){what}")
    if any(r.kwh < 0 for r in out):
        out = _net_by_start(out)
    notes = [f"skipped non-energy {s}" for s in sorted(skipped)]
    minutes = None
    if len(durations) == 1:
        sec = durations.pop()
        minutes = sec // 60 if sec % 60 == 0 else None
    return MeterData("greenbutton-espi", out, minutes, notes)


# ---------------------------------------------------------------------------------------------


def parse_meter_file(data: bytes, tz: ZoneInfo | None, content_type: str | None = None) -> MeterData:
    """Sniff ESPI XML (``<``) or CSV (anything else) and parse it."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    ct = (content_type or "").split(";")[0].strip().lower()
    if head.startswith(b"<") or ct.endswith("xml"):
        return parse_espi(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_csv(text, tz)


__all__ = ["MAX_READINGS", "MeterData", "MeterFileError", "parse_csv", "parse_espi", "parse_meter_file"]
