"""The Gymnasium vector face: spaces, seeding, masks, same-step autoreset, and SB3's MaskablePPO on it."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.passive_env_checker import check_obs
from gymnasium.vector import AutoresetMode, VectorEnv

from townlet.world.gym_vector import TownVectorEnv
from townlet.world.spec import NUM_ACTIONS, Action

from .conftest import small


def _env(episode_length: int = 6, seed: int = 0, **overrides: object) -> TownVectorEnv:
    return TownVectorEnv(small("default", episode_length=episode_length, **overrides), seed=seed)


def _masked_sample(env: TownVectorEnv, rng: np.random.Generator) -> np.ndarray:
    masks = env.action_masks()
    return np.array([rng.choice(np.flatnonzero(row)) for row in masks])


def test_spaces_and_observations_follow_gymnasium() -> None:
    env = _env()
    assert isinstance(env, VectorEnv) and env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.num_envs == 2 * small("default").num_agents  # one sub-env per agent of every town
    assert env.action_space.shape == (env.num_envs,) and env.single_action_space == Discrete(NUM_ACTIONS)
    obs, infos = env.reset(seed=0)
    check_obs(obs, env.observation_space, "reset")
    for _ in range(3):
        obs, rewards, term, trunc, infos = env.step(env.action_space.sample())
        check_obs(obs, env.observation_space, "step")
        assert rewards.shape == term.shape == trunc.shape == (env.num_envs,)
        assert infos["_action_mask"].all() and infos["action_mask"].shape == (env.num_envs, NUM_ACTIONS)


def test_same_seed_same_trajectory_and_reset_without_seed_starts_a_new_episode() -> None:
    def run(seed: int) -> list[object]:
        env = _env(seed=99)
        rng = np.random.default_rng(0)
        out: list[object] = [env.reset(seed=seed)[0]]
        for _ in range(8):  # crosses one episode end
            out.append(env.step(_masked_sample(env, rng))[:4])
        return out

    assert data_equivalence(run(3), run(3), exact=True)
    assert not data_equivalence(run(3), run(4))

    env = _env(seed=5)
    first, _ = env.reset()
    assert data_equivalence(first, env.reset(seed=5)[0], exact=True)  # no seed first: the constructor's
    second, _ = env.reset()
    third, _ = env.reset()
    assert env.town.episode == 2
    assert not data_equivalence(first, second) and not data_equivalence(second, third)
    assert data_equivalence(first, env.reset(seed=5)[0], exact=True)


def test_masks_in_infos_and_action_masks_agree_and_masked_actions_wait() -> None:
    env = _env(episode_length=20)
    _, infos = env.reset(seed=2)
    rng = np.random.default_rng(1)
    for _ in range(5):
        masks = env.action_masks()
        assert masks.dtype == bool and masks[:, Action.NOOP].all()
        assert np.array_equal(masks, infos["action_mask"])
        _, _, _, _, infos = env.step(_masked_sample(env, rng))
    blocked = np.argmin(env.action_masks(), axis=1)  # the first disallowed action of each agent
    rows = np.flatnonzero(~env.action_masks()[np.arange(env.num_envs), blocked])
    assert rows.size, "some agent has a disallowed action"
    moves = np.zeros(env.num_envs, dtype=np.int64)
    moves[rows] = blocked[rows]
    env.step(moves)
    assert np.array_equal(env.town.last_action.reshape(-1)[rows], np.zeros(rows.size))  # acted as NOOP


def test_same_step_autoreset_at_the_episode_end() -> None:
    env = _env(episode_length=4)
    env.reset(seed=0)
    for t in range(4):
        obs, _, term, trunc, infos = env.step(np.zeros(env.num_envs, dtype=np.int64))
        assert trunc.all() == (t == 3) and not term.any()
    assert infos["_final_obs"].all() and infos["_final_info"].all()
    final = infos["final_obs"][0]
    assert set(final) == {"map", "features"} and env.single_observation_space.contains(final)
    assert env.town.tick == 0 and env.town.episode == 1  # the returned obs is the next episode's start
    assert data_equivalence(obs, {"map": env.town.observe().maps, "features": env.town.observe().features})
    assert not data_equivalence(final["features"], obs["features"][0])
    _, _, _, trunc, infos = env.step(np.zeros(env.num_envs, dtype=np.int64))
    assert not trunc.any() and "final_obs" not in infos


def test_a_faint_terminates_that_sub_env_only() -> None:
    env = TownVectorEnv(small("default", episode_length=50, needs={"decay": [0.3, 0.0, 0.0]}), seed=0)
    env.reset(seed=0)
    for _ in range(10):
        _, _, term, trunc, infos = env.step(np.zeros(env.num_envs, dtype=np.int64))
        if term.any():
            break
    assert term.any() and not trunc.any()
    assert np.array_equal(infos["fainted"], term) and np.array_equal(infos["_final_obs"], term)
    assert all((infos["final_obs"][i] is None) != bool(term[i]) for i in range(env.num_envs))


def test_render_gives_one_frame_per_town(capsys: pytest.CaptureFixture[str]) -> None:
    env = TownVectorEnv(small("default"), seed=0, render_mode="ansi")
    env.reset(seed=0)
    frames = env.render()
    assert frames is not None and len(frames) == 2 and all("tick 0/" in str(f) for f in frames)
    human = TownVectorEnv(small("default"), seed=0, render_mode="human")
    human.reset(seed=0)
    capsys.readouterr()
    assert human.render() is None and capsys.readouterr().out.count("tick 0/") == 2
    with pytest.raises(ValueError, match="render_mode='window'"):
        TownVectorEnv(small("default"), render_mode="window")


@pytest.mark.torch
def test_maskable_ppo_trains_through_the_sb3_adapter() -> None:
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from townlet_tools.sb3 import TownSB3VecEnv

    env = TownSB3VecEnv(TownVectorEnv(small("default", num_agents=2, episode_length=16), seed=0))
    masks = env.env_method("action_masks")
    assert len(masks) == env.num_envs and np.array_equal(np.stack(masks), env.action_masks())
    model = sb3_contrib.MaskablePPO(
        "MultiInputPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    obs = env.reset()
    actions, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
    assert env.action_masks()[np.arange(env.num_envs), actions].all()  # only allowed actions chosen
