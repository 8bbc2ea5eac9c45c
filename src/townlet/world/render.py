"""Pictures of one town (an RGB frame, a coloured text frame): they show what returns cannot, whether
agents walk to the right object or queue. An agent's colour is its most urgent need, green when fine."""

from __future__ import annotations

import sys

import numpy as np

from townlet.world.config import NEED_NAMES, OBJECT_KINDS
from townlet.world.vectown_state import TownState

RGB = tuple[int, int, int]
RENDER_MODES: tuple[str, ...] = ("human", "rgb_array", "ansi")
MIN_TILE, MAX_TILE = 8, 64

FLOOR: RGB = (236, 233, 224)
WALL: RGB = (64, 66, 78)
STRIP: RGB = (40, 42, 54)
TEXT: RGB = (250, 250, 250)
DARK: RGB = (30, 30, 30)
PIP: RGB = (200, 40, 40)
NEED_COLOURS: tuple[RGB, ...] = ((235, 140, 30), (40, 150, 220), (150, 80, 200))  # order of NEED_NAMES
FINE: RGB = (50, 180, 90)
OBJECT_COLOURS: dict[str, RGB] = {
    "fridge": (190, 220, 235), "stove": (240, 190, 150), "shower": (170, 210, 250), "bed": (215, 190, 235),
    "job_site": (200, 200, 170),
}  # fmt: skip
OBJECT_LETTERS: dict[str, str] = {"fridge": "F", "stove": "S", "shower": "H", "bed": "B", "job_site": "J"}
AGENT_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"

# 3x5 glyphs for the letters and numbers drawn into the RGB frame
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    "F": ("111", "100", "110", "100", "100"), "S": ("011", "100", "010", "001", "110"),
    "H": ("101", "101", "111", "101", "101"), "B": ("110", "101", "110", "101", "110"),
    "J": ("001", "001", "001", "101", "111"),
}  # fmt: skip
_ANSI_NEED = ("33", "36", "35")  # yellow, cyan, magenta: the terminal's nearest to NEED_COLOURS
_ANSI_FINE = "32"


def most_urgent(needs: np.ndarray, threshold: float) -> np.ndarray:
    """Per agent (rows of ``needs`` [A, 3]): the index of its lowest need if below ``threshold``, else -1."""
    return np.where(needs.min(axis=1) < threshold, needs.argmin(axis=1), -1)


def _placed(town: TownState, env: int) -> tuple[np.ndarray, dict[tuple[int, int], list[int]]]:
    """Each agent's most urgent need and the agents on each occupied cell of town ``env``."""
    urgent = most_urgent(town.needs[env], float(town.cfg.needs.threshold))
    cells: dict[tuple[int, int], list[int]] = {}
    for a in range(town.num_agents):
        cells.setdefault((int(town.x[env, a]), int(town.y[env, a])), []).append(a)
    return urgent, cells


def _check_env(town: TownState, env: int) -> None:
    if not 0 <= env < town.num_envs:
        raise ValueError(f"env={env} is outside this town's 0..{town.num_envs - 1}")


def _fill(img: np.ndarray, x0: int, y0: int, w: int, h: int, colour: RGB) -> None:
    img[max(y0, 0) : max(y0 + h, 0), max(x0, 0) : max(x0 + w, 0)] = colour


def _border(img: np.ndarray, x0: int, y0: int, size: int, width: int, colour: RGB) -> None:
    _fill(img, x0, y0, size, width, colour)
    _fill(img, x0, y0 + size - width, size, width, colour)
    _fill(img, x0, y0, width, size, colour)
    _fill(img, x0 + size - width, y0, width, size, colour)


def _text(img: np.ndarray, text: str, x0: int, y0: int, scale: int, colour: RGB) -> None:
    """Draw ``text`` with the 3x5 glyphs (unknown characters leave a gap)."""
    for i, char in enumerate(text):
        rows = _GLYPHS.get(char)
        if rows is None:
            continue
        left = x0 + i * 4 * scale
        for r, row in enumerate(rows):
            for c, bit in enumerate(row):
                if bit == "1":
                    _fill(img, left + c * scale, y0 + r * scale, scale, scale, colour)


def _agent_box(img: np.ndarray, a: int, x0: int, y0: int, size: int, colour: RGB) -> None:
    _fill(img, x0, y0, size, size, colour)
    _border(img, x0, y0, size, 1, DARK)
    glyph = max(1, (size - 2) // 6)
    _text(img, str(a % 10), x0 + (size - 3 * glyph) // 2, y0 + (size - 5 * glyph) // 2, glyph, TEXT)


def render_rgb(town: TownState, env: int = 0, tile: int = 24) -> np.ndarray:
    """One frame of town ``env`` as uint8 RGB [tile * (height + 1), tile * width, 3]."""
    _check_env(town, env)
    if not MIN_TILE <= tile <= MAX_TILE:
        raise ValueError(f"tile={tile} must lie in [{MIN_TILE}, {MAX_TILE}] pixels")
    lay = town.layout
    scale = max(1, tile // 12)
    cells = np.empty((lay.height, lay.width, 3), dtype=np.uint8)
    cells[:] = FLOOR
    cells[lay.walls] = WALL
    grid = cells.repeat(tile, axis=0).repeat(tile, axis=1)
    grid[::tile] = (grid[::tile] * 0.92).astype(np.uint8)  # faint grid lines between cells
    grid[:, ::tile] = (grid[:, ::tile] * 0.92).astype(np.uint8)
    img = np.empty((tile + grid.shape[0], grid.shape[1], 3), dtype=np.uint8)
    img[tile:] = grid

    # the status strip: the tick and a bar of the day gone
    width = img.shape[1]
    img[:tile] = STRIP
    _text(img, str(town.tick), 3, (tile - 5 * scale) // 2, scale, TEXT)
    day = town.tick % town.cfg.day_length / town.cfg.day_length
    left, bar_w, bar_h = width // 2, width // 2 - 4, max(2, tile // 6)
    top = (tile - bar_h) // 2
    _fill(img, left, top, bar_w, bar_h, DARK)
    _fill(img, left, top, round(day * bar_w), bar_h, (240, 200, 80))

    # objects: a letter, a border while in use, a stock bar
    for o in range(lay.num_objects):
        kind = OBJECT_KINDS[int(lay.obj_kind[o])]
        x0, y0 = int(lay.obj_x[o]) * tile, tile + int(lay.obj_y[o]) * tile
        _fill(img, x0 + 1, y0 + 1, tile - 2, tile - 2, OBJECT_COLOURS[kind])
        _text(img, OBJECT_LETTERS[kind], x0 + 3, y0 + 3, scale, DARK)
        if town.obj_occ[env, o] >= 0:
            _border(img, x0 + 1, y0 + 1, tile - 2, max(1, scale), DARK)
        if lay.obj_stock[o] > 0:
            share = float(town.stock[env, o]) / float(lay.obj_stock[o])
            _fill(img, x0 + 3, y0 + tile - 3 - scale, round(share * (tile - 6)), scale, (60, 130, 60))

    # a lone agent: a square at the cell's top right and its need bars; several: a 2x2 arrangement
    urgent, here = _placed(town, env)
    for (cx, cy), agents in here.items():
        x0, y0 = cx * tile, tile + cy * tile
        for k, a in enumerate(agents):
            colour = FINE if urgent[a] < 0 else NEED_COLOURS[int(urgent[a])]
            if len(agents) == 1:
                size = max(5, tile * 11 // 24)
                _agent_box(img, a, x0 + tile - size - 2, y0 + 2, size, colour)
                bar_h = max(1, tile // 12)  # hunger, hygiene, energy along the cell's bottom
                bars_top = y0 + tile - len(NEED_NAMES) * (bar_h + 1) - 1
                for n, value in enumerate(town.needs[env, a]):
                    length = round(float(np.clip(value, 0.0, 1.0)) * (tile - 4))
                    _fill(img, x0 + 2, bars_top + n * (bar_h + 1), tile - 4, bar_h, DARK)
                    _fill(img, x0 + 2, bars_top + n * (bar_h + 1), length, bar_h, NEED_COLOURS[n])
            else:
                half = tile // 2
                q = min(k, 3)
                _agent_box(img, a, x0 + 1 + (q % 2) * half, y0 + 1 + (q // 2) * half, half - 2, colour)

    # one red pip per queued agent (up to four) along the object's bottom edge, over the agents
    queued = np.bincount(town.q_obj[env][town.q_obj[env] >= 0], minlength=lay.num_objects)
    pip = max(2, tile // 8)
    for o in np.flatnonzero(queued).tolist():
        x0, y0 = int(lay.obj_x[o]) * tile, tile + int(lay.obj_y[o]) * tile
        for k in range(min(int(queued[o]), 4)):
            _fill(img, x0 + 2 + k * (pip + 1), y0 + tile - pip - 1, pip, pip, PIP)
    return img


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _agent_line(town: TownState, env: int, a: int, urgent: int, colour: bool) -> str:
    code = _ANSI_FINE if urgent < 0 else _ANSI_NEED[urgent]
    parts = [_paint(AGENT_CHARS[a % len(AGENT_CHARS)], code, colour), f"({town.x[env, a]},{town.y[env, a]})"]
    for n, name in enumerate(NEED_NAMES):
        value = float(np.clip(town.needs[env, a, n], 0.0, 1.0))
        filled = round(value * 8)
        parts.append(f"{name} {'#' * filled}{'-' * (8 - filled)} {value:.2f}")
    lay = town.layout
    if town.occ[env, a] >= 0:
        parts.append(f"using {OBJECT_KINDS[int(lay.obj_kind[town.occ[env, a]])]}")
    elif town.q_obj[env, a] >= 0:
        parts.append(f"queued at {OBJECT_KINDS[int(lay.obj_kind[town.q_obj[env, a]])]}")
    return "  ".join(parts)


def render_ansi(town: TownState, env: int = 0, colour: bool = True) -> str:
    """Town ``env`` as text: a header, the grid (``#`` wall, letters objects, numbers agents) and a line
    per agent with its needs; ANSI colours when ``colour`` (an agent's colour is its most urgent need)."""
    _check_env(town, env)
    lay = town.layout
    grid = [["#" if lay.walls[y, x] else "." for x in range(lay.width)] for y in range(lay.height)]
    for o in range(lay.num_objects):
        letter = OBJECT_LETTERS[OBJECT_KINDS[int(lay.obj_kind[o])]]
        busy = town.obj_occ[env, o] >= 0
        grid[int(lay.obj_y[o])][int(lay.obj_x[o])] = _paint(letter if busy else letter.lower(), "1", colour)
    urgent, here = _placed(town, env)
    for (x, y), agents in here.items():
        a = agents[0]
        char = AGENT_CHARS[a % len(AGENT_CHARS)] if len(agents) == 1 else "*"
        grid[y][x] = _paint(char, _ANSI_FINE if urgent[a] < 0 else _ANSI_NEED[int(urgent[a])], colour)
    cfg = town.cfg
    lines = [
        f"tick {town.tick}/{cfg.episode_length}  day {town.tick % cfg.day_length}/{cfg.day_length}  "
        f"episode {town.episode}  env {env}",
        *("".join(row) for row in grid),
        *(_agent_line(town, env, a, int(urgent[a]), colour) for a in range(town.num_agents)),
        "f/F fridge  s/S stove  h/H shower  b/B bed  j/J job site (capital: in use)  * several agents",
    ]
    return "\n".join(lines) + "\n"


def render(town: TownState, mode: str, env: int = 0) -> np.ndarray | str | None:
    """``rgb_array`` → :func:`render_rgb`, ``ansi`` → :func:`render_ansi`, ``human`` → the ANSI frame
    printed to stdout (a terminal is the one display every user has) and None."""
    if mode == "human":
        sys.stdout.write(render_ansi(town, env))
        sys.stdout.flush()
        return None
    if mode == "rgb_array":
        return render_rgb(town, env)
    if mode == "ansi":
        return render_ansi(town, env)
    raise ValueError(f"render mode {mode!r} is unknown; choose one of {', '.join(RENDER_MODES)}")
