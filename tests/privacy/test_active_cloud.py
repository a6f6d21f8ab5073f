"""An active cloud forcing rejections to read the private context, and the device's defence."""

from __future__ import annotations

import torch
from active_cloud import CITIES, success_rate

from specsteer._steering import plausible_steering


def test_the_probe_reads_the_city_without_the_defence_and_not_with_it() -> None:
    trials = 48
    chance = 1 / len(CITIES)
    assert success_rate(trials, defended=False) >= 0.9  # measured: 100% of 400
    assert success_rate(trials, defended=True) <= chance + 0.1  # measured: 14.8% of 400


# [vocab=6] context-free row: ranks 0 > 1 > 2 > 3 > 4 > 5
ROW0 = torch.tensor([-0.5, -1.0, -2.0, -3.0, -4.0, -5.0])


def test_candidates_the_public_view_ranks_keep_their_steering() -> None:
    ids = torch.tensor([0, 1])  # both within the context-free top-2
    private = torch.tensor([-0.1, -3.0])
    assert torch.equal(plausible_steering(private, ROW0, ids), private)


def test_candidates_outside_the_public_ranking_lose_their_steering() -> None:
    ids = torch.tensor([0, 4, 5])  # top-3 of the public view is {0, 1, 2}
    private = torch.tensor([-2.0, -0.1, -0.2])
    out = plausible_steering(private, ROW0, ids)
    assert out.tolist() == [-2.0, -4.0, -5.0]  # 4 and 5: log P_S0 itself, a zero lift
    wider = plausible_steering(private, ROW0, ids, top_m=6)
    assert torch.equal(wider, private)


def test_ties_at_the_cut_are_ranked_and_ruled_out_tokens_are_not() -> None:
    row0 = torch.tensor([-1.0, -1.0, -1.0, -float("inf")])
    private = torch.tensor([-0.3, -0.2, -5.0])
    ids = torch.tensor([2, 1, 3])
    out = plausible_steering(private, row0, ids, top_m=1)
    assert torch.equal(out[:2], private[:2])  # tied with the best: ranked
    assert out[2].item() == -float("inf")  # ruled out by the public view: no steering


def test_equal_fake_candidates_leave_the_choice_to_the_public_view() -> None:
    """The attack's shape in one position: the fused argmax no longer depends on the private
    row among candidates the public view does not rank."""
    from specsteer import fusion

    row0 = torch.log_softmax(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0]), -1)
    ids = torch.tensor([4, 5, 6, 7])
    flat = torch.full((4,), -1.386)
    picks = set()
    for favoured in range(4):
        private_row = row0.clone()
        private_row[ids[favoured]] += 4.0  # the private context favours one city
        lp_private = plausible_steering(private_row[ids], row0, ids)
        picks.add(fusion.recover_index(flat, lp_private, row0[ids], 1.0, True))
    assert picks == {0}
