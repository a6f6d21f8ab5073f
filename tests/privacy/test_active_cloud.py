"""An active cloud forcing rejections to read the private context, and the device's defence."""

from __future__ import annotations

import pytest
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
    # 4 and 5: log P_S0 plus one shared lift, the ranked candidate's -1.5 (-2.0 against -0.5)
    assert out.tolist() == [-2.0, -5.5, -6.5]
    wider = plausible_steering(private, ROW0, ids, top_m=6)
    assert torch.equal(wider, private)


def test_an_unranked_candidate_never_wins_because_the_ranked_ones_were_steered_down() -> None:
    """An end token the public view does not rank, after a span the cloud saw concealed: the
    private context steers every ranked candidate down; with a zero lift the end token won and
    the answer stopped mid-phrase. It now shares the lowest ranked lift, so it loses to them."""
    from specsteer import fusion

    row0 = torch.log_softmax(torch.tensor([3.0, 2.5, 2.0, 1.0, 0.0, -2.0]), -1)
    ids = torch.tensor([5, 0, 1])  # the end token (unranked in the top-3), then two ranked
    cloud = torch.tensor([-1.0, -2.2, -2.7])  # the cloud favours ending
    private = torch.stack([row0[5] - 8.0, row0[0] - 4.0, row0[1] - 6.0])
    lp = plausible_steering(private, row0, ids)
    assert lp[0].item() == pytest.approx((row0[5] - 6.0).item())  # the lowest ranked lift
    assert fusion.recover_index(cloud, lp, row0[ids], 2.0, True) == 1
    positive = plausible_steering(row0[ids] + 1.0, row0, ids)
    assert positive[0].item() == pytest.approx(row0[5].item())  # a lift is never shared upward


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
