"""A scenario's timeline drawn in the terminal: one lane per process, time scaled to a width.

    time (s)     0.0                 5.0                 10.0
    trainer      ====================F===================F======X....R====
                 = running  F freeze (checkpoint)  X kill -9  . down  R restore
"""

WIDTH = 60


def draw(lanes, legend, total):
    """LANES: [(name, spans, marks)] where SPANS are (start s, end s, char) painted in order
    and MARKS are (time s, char) drawn over them; LEGEND: {char: meaning}; TOTAL: seconds."""
    total = max(total, 1e-3)
    col = lambda t: min(WIDTH - 1, max(0, int(round(t / total * (WIDTH - 1)))))
    ticks = [" "] * (WIDTH + 12)
    for i in range(4):
        label = f"{total * i / 3:.1f}"
        at = col(total * i / 3)
        ticks[at:at + len(label)] = label
    out = [f"{'time (s)':<13}{''.join(ticks).rstrip()}"]
    for name, spans, marks in lanes:
        row = [" "] * WIDTH
        prev = None  # the span painted before: its end (s) and first column
        for start, end, char in spans:
            first = col(start)
            if prev and prev[0] <= start:
                # It follows that span: give it a column of its own, however short it was (a
                # 100 ms restore right after a kill would otherwise vanish under the kill).
                first = max(first, prev[1] + 1)
            last = max(col(end), first)
            row += [" "] * (last + 1 - len(row))
            row[first:last + 1] = char * (last + 1 - first)
            prev = (end, first)
        for t, char in marks:
            row[col(t)] = char
        out.append(f"{name:<13}{''.join(row).rstrip()}")
    out.append(" " * 13 + "  ".join(f"{char} {meaning}" for char, meaning in legend.items()))
    return "\n".join(out)
