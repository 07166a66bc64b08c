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
        for start, end, char in spans:
            for c in range(col(start), col(end) + 1):
                row[c] = char
        for t, char in marks:
            row[col(t)] = char
        out.append(f"{name:<13}{''.join(row).rstrip()}")
    out.append(" " * 13 + "  ".join(f"{char} {meaning}" for char, meaning in legend.items()))
    return "\n".join(out)
