"""Rendering the town: RGB frames, ANSI text, the PettingZoo render modes and townlet-render's GIFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from PIL import GifImagePlugin, Image

from townlet.behaviour.rules import make_behaviour
from townlet.cli.render import main as render_main
from townlet.world import make_town
from townlet.world.pz import TownParallelEnv
from townlet.world.render import FINE, NEED_COLOURS, WALL, most_urgent, render_ansi, render_rgb

from .conftest import small


@pytest.fixture
def town():
    town = make_town(small("queue_conflict", num_envs=2), seed=0)
    obs = town.reset()
    teacher = make_behaviour("scripted", town.spec)
    for _ in range(5):  # the teacher walks to the shower: by now one agent uses it and others queue
        obs = town.step(teacher.act(obs).actions).obs
    return town


def test_most_urgent_is_the_lowest_need_below_the_threshold() -> None:
    needs = np.array([[0.9, 0.8, 0.95], [0.3, 0.1, 0.9], [0.5, 0.45, 0.41]])
    assert most_urgent(needs, 0.4).tolist() == [-1, 1, -1]


def test_rgb_frame_shows_walls_and_agents_coloured_by_need(town) -> None:
    tile = 16
    frame = render_rgb(town, env=0, tile=tile)
    lay = town.layout
    assert frame.shape == ((lay.height + 1) * tile, lay.width * tile, 3) and frame.dtype == np.uint8
    corner = frame[tile + tile // 2, tile // 2]  # the wall cell (0, 0), below the status strip
    assert tuple(int(c) for c in corner) == WALL
    colours = {tuple(int(c) for c in px) for px in frame.reshape(-1, 3)}
    urgent = most_urgent(town.needs[0], town.cfg.needs.threshold)
    for code in urgent:
        assert (FINE if code < 0 else NEED_COLOURS[code]) in colours
    assert not np.array_equal(frame, render_rgb(town, env=1, tile=tile))  # the other town differs
    with pytest.raises(ValueError, match="env=2"):
        render_rgb(town, env=2)


def test_frames_change_as_the_town_moves(town) -> None:
    before = render_rgb(town)
    town.step(np.full(town.n_agents, 2))  # everyone tries to move south
    assert not np.array_equal(before, render_rgb(town))


def test_ansi_frame_has_the_grid_agents_and_needs(town) -> None:
    text = render_ansi(town, colour=False)
    lines = text.splitlines()
    lay = town.layout
    assert lines[0].startswith(f"tick {town.tick}/")
    assert lines[1] == "#" * lay.width and lines[lay.height] == "#" * lay.width
    agent_lines = lines[lay.height + 1 : lay.height + 1 + town.num_agents]
    assert all("hunger" in line and "energy" in line for line in agent_lines)
    assert any("using shower" in line for line in agent_lines)
    assert "\x1b[" not in text and "\x1b[" in render_ansi(town, colour=True)


def test_pettingzoo_render_modes_and_api(recwarn) -> None:
    cfg = small("default", episode_length=30)
    rgb_env = TownParallelEnv(cfg, seed=0, render_mode="rgb_array")
    rgb_env.reset(seed=0)
    frame = rgb_env.render()
    assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
    ansi_env = TownParallelEnv(cfg, seed=0, render_mode="ansi")
    ansi_env.reset(seed=0)
    assert isinstance(ansi_env.render(), str) and "tick 0/30" in str(ansi_env.render())
    assert TownParallelEnv(cfg).render() is None  # no mode chosen: a warning, no frame
    with pytest.raises(ValueError, match="render_mode='window'"):
        TownParallelEnv(cfg, render_mode="window")
    parallel_api_test(TownParallelEnv(cfg, seed=0, render_mode="ansi"), num_cycles=40)


def test_townlet_render_writes_a_gif_and_text_frames(tmp_path: Path, capsys) -> None:
    gif = tmp_path / "teacher.gif"
    args = [str(tmp_path), "policy=scripted", "world=queue_conflict", "world.episode_length=10"]
    assert render_main([*args, "tile=8", f"out={gif}"]) == 0
    assert "10 frames of policy=scripted in world=queue_conflict" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert isinstance(image, GifImagePlugin.GifImageFile)
        assert image.n_frames == 10 and image.is_animated
    assert render_main([*args, "policy=random", "ticks=3", "out=-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("tick ") == 4 and "4 frames" in captured.err  # start + 3 ticks
    text = tmp_path / "frames.txt"
    assert render_main([*args, "mode=ansi", "ticks=2", f"out={text}"]) == 0
    assert text.read_text().count("tick ") == 3 and "\x1b[" not in text.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing", "policy=scripted"], "does not exist"),
        (["{tmp}", "policy=clever"], "policy='clever' is unknown"),
        (["{tmp}", "policy=scripted", "out={tmp}/no/dir/e.gif"], "does not exist"),
        (["{tmp}", "policy=scripted", "out={tmp}"], "is a directory"),
        (["{tmp}", "policy=scripted", "fps=0"], "fps=0 must lie in"),
        (["{tmp}", "policy=trained", "out={tmp}/e.gif"], "no checkpoint found"),
        (["{tmp}", "policy=scripted", "world=atlantis", "out={tmp}/e.gif"], "atlantis"),
    ],
)
def test_bad_render_requests_are_one_line(args, message, tmp_path: Path, capsys) -> None:
    assert render_main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.rglob("*.gif"))
