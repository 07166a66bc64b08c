"""criu-lab guide [SECTION]: the lab guide (docs/lab-guide.md) on the host, whole or one section."""
import os
import re

from .outcome import NOT_READY, OK, USAGE

# Where the guide is: a checkout's docs/ beside the folder of the launcher (tests and
# `npm run setup:host` run the checkout's own), else where setup-lab.sh installs it.
# CRIU_LAB_GUIDE moves it (tests).
HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
INSTALLED = "/usr/local/share/criu-lab/lab-guide.md"
CANDIDATES = ([os.environ["CRIU_LAB_GUIDE"]] if os.environ.get("CRIU_LAB_GUIDE")
              else [os.path.join(HERE, "..", "docs", "lab-guide.md"), INSTALLED])

HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def register(sub):
    p = sub.add_parser("guide", help="print the lab guide, or one section of it")
    p.add_argument("section", nargs="*", metavar="SECTION",
                   help="words of a section's heading (any case), or its number in the list")
    p.set_defaults(fn=cmd_guide)


def sections(text):
    """The guide's headings below its title, in order: [{number, level, title, start, end}],
    start and end being line indexes (end: the next heading of the same or a higher level).
    Lines in fenced code blocks are never headings (a shell comment starts with #)."""
    lines = text.split("\n")
    found, fenced = [], None
    for i, line in enumerate(lines):
        fence = FENCE.match(line)
        if fence:
            fenced = None if fenced == fence.group(1) else (fenced or fence.group(1))
            continue
        m = None if fenced else HEADING.match(line)
        if m and len(m.group(1)) > 1:
            found.append({"number": len(found) + 1, "level": len(m.group(1)), "title": m.group(2), "start": i})
    for n, s in enumerate(found):
        later = [t["start"] for t in found[n + 1:] if t["level"] <= s["level"]]
        s["end"] = later[0] if later else len(lines)
    return found


def words(text):
    """Lower-case words of a heading or a query: markdown's `code` and punctuation dropped,
    `criu-lab` kept whole."""
    return re.findall(r"[a-z0-9]+(?:[-_][a-z0-9]+)*", text.lower())


def match(found, query):
    """The sections QUERY names: its number, or the sections whose heading has every word of
    QUERY, whole words before word beginnings ("migrat" finds "Migrate ..."). None for an
    empty query."""
    q = words(query)
    if not q:
        return None
    if len(q) == 1 and q[0].isdigit():
        return [s for s in found if s["number"] == int(q[0])]
    for whole in (True, False):
        hits = [s for s in found
                if all(any(w == h if whole else h.startswith(w) for h in words(s["title"])) for w in q)]
        if hits:
            return hits
    return []


def listing(found):
    return "\n".join(f"  {s['number']:2}  {'  ' * (s['level'] - 2)}{s['title']}" for s in found)


def read_guide():
    for path in CANDIDATES:
        try:
            with open(path, encoding="utf-8") as f:
                return os.path.realpath(path), f.read()
        except FileNotFoundError:
            continue
    return None, None


def cmd_guide(args):
    path, text = read_guide()
    if text is None:
        message = f"the lab guide is not on this host (looked in {', '.join(CANDIDATES)}); set the host up again"
        return NOT_READY, {"ok": False, "error": message}, f"criu-lab guide: {message}"
    found = sections(text)
    query = " ".join(args.section)
    hits = match(found, query)
    outline = [{k: s[k] for k in ("number", "level", "title")} for s in found]
    if hits is None:
        return OK, {"ok": True, "path": path, "sections": outline, "section": None, "text": text}, text.rstrip("\n")
    if len(hits) != 1:
        why = (f"no section matches '{query}'" if not hits else
               f"'{query}' matches {len(hits)} sections: say more, or give its number")
        shown = hits or found
        message = f"{why}; the sections:\n{listing(shown)}"
        return USAGE, {"ok": False, "error": why, "sections": outline}, f"criu-lab guide: {message}"
    s = hits[0]
    body = "\n".join(text.split("\n")[s["start"]:s["end"]]).rstrip("\n")
    return OK, {"ok": True, "path": path, "sections": outline, "section": s["title"], "text": body}, body
