"""benchmarks/pointmaze/speed.py's Diffusion Forcing comparison: the paper configuration and the rows with ratios."""

from __future__ import annotations

import csv

import pytest


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("pointmaze/speed.py")


def test_the_df_paper_configuration_is_dfs_v1_5_maze_model(script, diffusion_forcing_planner, hierarchical_planner):
    for like in (diffusion_forcing_planner, hierarchical_planner):  # built from a DF folder or from HD's alone
        paper = script.df_paper_planner(like)
        net = paper.denoiser
        assert len(net.blocks) == 12 and net.inp.out_features == 128 and not net.config["causal"]
        assert {b.attn.num_heads for b in net.blocks} == {4} and {b.mlp[0].out_features for b in net.blocks} == {512}
        # attention and feed-forward: DF's "about 2.4 M parameters"; our blocks add adaLN conditioning on top
        core = sum(p.numel() for b in net.blocks for m in (b.attn, b.mlp) for p in m.parameters())
        assert 2.3e6 < core < 2.5e6 < sum(p.numel() for p in net.parameters())
        assert (paper.num_inference_steps, paper.scheduling, paper.frame_stack) == (50, "pyramid", 10)
        assert paper.horizon == like.task.eval.max_episode_steps  # the whole episode, 30 tokens on umaze
        assert paper.schedule.config == {"num_train_timesteps": 1000, "prediction_type": "sample",
                                         "beta_schedule": "linear"}


def test_df_rows_time_replan_and_act_against_the_baseline_and_the_paper(script, diffusion_forcing_planner,
                                                                        diffuser_planner, tmp_path, monkeypatch):
    monkeypatch.setitem(script.DF_PAPER, "depth", 1)  # a small stand-in: this test checks the rows, not the model
    monkeypatch.setitem(script.DF_PAPER, "num_inference_steps", 2)
    monkeypatch.setitem(script.DF_PAPER, "horizon", 20)
    diffusion_forcing_planner.save_pretrained(tmp_path / "df")
    diffuser_planner.save_pretrained(tmp_path / "hd")
    out = tmp_path / "speed-df.csv"
    script.main([str(tmp_path / "df"), str(tmp_path / "hd"), "--repeats", "1", "--act-steps", "3",
                 "--df-out", str(out), "--out", str(tmp_path / "unused.csv")])
    rows = {r["role"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"df", "baseline", "paper"} and not (tmp_path / "unused.csv").exists()
    df, base, paper = rows["df"], rows["baseline"], rows["paper"]
    assert all(float(r["plan_ms"]) > 0 and float(r["act_ms"]) > 0 for r in rows.values())
    assert float(df["plan_over_baseline"]) == pytest.approx(float(df["plan_ms"]) / float(base["plan_ms"]), rel=0.01)
    assert float(df["paper_plan_over"]) == pytest.approx(float(paper["plan_ms"]) / float(df["plan_ms"]), rel=0.01)
    assert float(df["paper_act_over"]) == pytest.approx(float(paper["act_ms"]) / float(df["act_ms"]), rel=0.01)
    assert float(paper["paper_plan_over"]) == 1.0 and paper["num_inference_steps"] == "2"
