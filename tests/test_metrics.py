"""Tests for sortgpt/metrics.py: exact match, token accuracy and the seed's score line."""

import pytest
import torch

from sortgpt.metrics import SortExactMatch, SortTokenAccuracy, format_score


def test_exact_match_counts_whole_sequences_over_batches():
    metric = SortExactMatch()
    target = torch.tensor([[0, 1, 2], [0, 0, 1], [1, 1, 2]])
    preds = torch.tensor([[0, 1, 2], [0, 1, 1], [1, 1, 2]])  # the middle one has one wrong token
    metric.update(preds, target)
    metric.update(target[:1], target[:1])
    assert metric.compute().item() == pytest.approx(3 / 4)
    assert metric.last_counts == (3, 4)
    metric.reset()
    metric.update(preds[1:2], target[1:2])
    assert metric.compute().item() == 0.0 and metric.last_counts == (0, 1)


def test_token_accuracy_counts_tokens():
    metric = SortTokenAccuracy()
    target = torch.tensor([[0, 1, 2], [0, 0, 1]])
    preds = torch.tensor([[0, 1, 2], [0, 1, 2]])
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx(4 / 6)
    assert metric.last_counts == (4, 6)


@pytest.mark.parametrize("metric", [SortExactMatch(), SortTokenAccuracy()])
def test_shape_mismatch_is_refused(metric):
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))


def test_format_score_is_the_seed_line():
    assert format_score(5000, 5000) == "final score: 5000/5000 = 100.00% correct"
    assert format_score(555, 556) == "final score: 555/556 = 99.82% correct"
    assert format_score(0, 0) == "final score: 0/0 = 0.00% correct"
