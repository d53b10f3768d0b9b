"""SVG of UDP datagrams: one picture per pair of endpoints, time running down.

Two lifelines without state bands (UDP has no states), an arrow per datagram labelled
with its frame, length and first payload bytes, one row each: what the TCP pictures of
``svg`` show per segment, for a protocol that keeps each message whole.
"""

from __future__ import annotations

from html import escape

from ..core.datagram import NO_STATES, Datagram

WIDTH, LEFT_X, RIGHT_X, TOP, ROW = 900, 230, 670, 110, 28
MAX_DATAGRAMS = 400


def udp_picture(datagrams: list[Datagram]) -> str:
    """One pair of endpoints' datagrams (at least one) as an SVG document."""
    shown = datagrams[:MAX_DATAGRAMS]
    left, right = shown[0].sender, shown[0].receiver
    bottom = TOP + ROW * len(shown) + 20
    height = bottom + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           'font-family="monospace" font-size="12">',
           '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
           'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#222"/></marker></defs>',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15" '
           f'font-weight="bold">udp: {escape(left)} ⇄ {escape(right)}</text>',
           f'<text x="{WIDTH / 2}" y="44" text-anchor="middle" fill="#555">'
           f'{escape(NO_STATES)}</text>']
    if len(datagrams) > len(shown):
        out.append(f'<text x="{WIDTH / 2}" y="60" text-anchor="middle" fill="#c00">'
                   f'first {len(shown)} of {len(datagrams)} datagrams</text>')
    for x, ep in ((LEFT_X, left), (RIGHT_X, right)):
        out.append(f'<text x="{x}" y="86" text-anchor="middle">{escape(ep)}</text>')
        out.append(f'<line x1="{x}" y1="{TOP - 14}" x2="{x}" y2="{bottom}" stroke="#555"/>')
    for i, d in enumerate(shown):
        y = TOP + ROW * i + 10
        x1, x2 = (LEFT_X, RIGHT_X) if d.sender == left else (RIGHT_X, LEFT_X)
        text = f"{d.frame}: UDP len {d.length} {d.preview(24)}".rstrip()
        out.append(f'<g><title>{escape(d.text())}</title><line x1="{x1}" y1="{y}" '
                   f'x2="{x2}" y2="{y + 8}" stroke="#222" marker-end="url(#head)"/>'
                   f'<text x="{WIDTH / 2}" y="{y - 3}" text-anchor="middle">'
                   f'{escape(text)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
