"""Every click as training data: components and every-click triplets (training/click_graph.py)."""

from __future__ import annotations

import numpy as np

from training.click_graph import components, every_click_triplets


def test_components_join_a_query_with_all_its_clicks_and_chain_through_shared_images() -> None:
    groups = components(np.array([(0, 1), (0, 2), (3, 2), (5, 6)]), 8)
    assert groups[0] == groups[1] == groups[2] == groups[3]
    assert groups[5] == groups[6] and groups[5] != groups[0]
    assert len({groups[4], groups[7], groups[0], groups[5]}) == 4  # 4 and 7: singletons


def test_a_click_with_skipped_results_above_uses_them_and_one_without_gets_another_components_image() -> None:
    pairs = np.array([(0, 1), (0, 2), (3, 4)])
    negatives = np.array([(0, 9), (0, 8)])  # two results skipped above query 0's clicks
    rows = every_click_triplets(pairs, negatives, 10, seed=1)
    assert {tuple(r) for r in rows if r[1] == 1} == {(0, 1, 9), (0, 1, 8)}
    top_click = [tuple(r) for r in rows if r[0] == 3]
    assert len(top_click) == 1  # no skip-above negative: still one triplet
    groups = components(pairs, 10)
    assert groups[top_click[0][2]] != groups[3]  # its negative lies outside the query's component
    assert {tuple(r[:2]) for r in rows} == {(0, 1), (0, 2), (3, 4)}  # every click is used


def test_negatives_inside_the_component_are_not_used_and_the_pool_limits_the_samples() -> None:
    pairs = np.array([(0, 1), (1, 2)])
    negatives = np.array([(0, 2)])  # contradicted by the clicks: 2 is in 0's component
    rows = every_click_triplets(pairs, negatives, 50, pool=np.arange(40, 50), seed=0)
    assert len(rows) == 2 and all(40 <= n < 50 for n in rows[:, 2])
