"""Sparse updates in the training loop: a step touches only the rows its batch looked up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core import train
from core.models.bpr import BPRMF
from core.models.neumf import NeuMF
from core.train import Optimizers, TrainConfig, sparse_tables


@pytest.fixture(params=["dense-gradient", "sparse-gradient"], autouse=True)
def gradient_kind(request, monkeypatch):
    """Every test twice: a small table's dense gradient and a large one's sparse gradient
    (DENSE_GRAD_CELLS decides; these tables are tiny, so 0 forces the sparse path)."""
    if request.param == "sparse-gradient":
        monkeypatch.setattr(train, "DENSE_GRAD_CELLS", 0)
    return request.param


class _Net(nn.Module):
    """A sparse user table, a dense item table and a dense linear layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.users = nn.Embedding(10, 4, sparse=True)
        self.items = nn.Embedding(12, 4)
        self.head = nn.Linear(4, 1)

    def loss(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.head(self.users(users) * self.items(items)).square().mean()


def _config(weight_decay: float = 0.0) -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=4, lr=0.1, weight_decay=weight_decay)


def _one_step(net: _Net, weight_decay: float = 0.0, dense_only: bool = False) -> Optimizers:
    opt = Optimizers(net, _config(weight_decay), dense_only=dense_only)
    opt.zero_grad()
    net.loss(torch.tensor([1, 3, 3, 7]), torch.tensor([0, 2, 5, 5])).backward()
    opt.step()
    return opt


def test_a_sparse_step_changes_only_the_batch_rows_and_dense_parts_use_adamw(gradient_kind):
    net = _Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = _one_step(net)
    assert [type(p).__name__ for p in opt.parts] == ["AdamW"]  # the dense parameters
    assert opt.sparse == [net.users.weight]  # the row-wise Adam's
    assert net.users.weight.grad.is_sparse == (gradient_kind == "sparse-gradient")
    changed = (net.users.weight != before["users.weight"]).any(1).nonzero().flatten()
    assert changed.tolist() == [1, 3, 7]
    # the dense item table and the head are AdamW's: their used parameters moved too
    moved_items = (net.items.weight != before["items.weight"]).any(1).nonzero().flatten()
    assert moved_items.tolist() == [0, 2, 5]
    assert not torch.equal(net.head.weight, before["head.weight"])


def test_the_row_wise_adam_is_adam_when_every_row_is_in_every_batch():
    torch.manual_seed(1)
    ours, ref = nn.Embedding(5, 3, sparse=True), nn.Embedding(5, 3)
    ref.weight.data.copy_(ours.weight.data)
    opt = Optimizers(ours, _config())
    adam = torch.optim.Adam(ref.parameters(), lr=0.1)
    for codes in ([0, 1, 2, 3, 4, 4], [4, 3, 2, 1, 0, 0, 1]):
        batch = torch.tensor(codes)
        opt.zero_grad()
        ours(batch).sin().sum().backward()
        opt.step()
        adam.zero_grad()
        ref(batch).sin().sum().backward()
        adam.step()
    assert torch.allclose(ours.weight, ref.weight, atol=1e-6)


def test_weight_decay_on_a_sparse_table_decays_only_the_used_rows():
    plain, decayed = _Net(), _Net()
    start = plain.users.weight.detach().clone()
    _one_step(plain)
    _one_step(decayed, weight_decay=0.5)
    gap = decayed.users.weight.detach() - plain.users.weight.detach()
    used = torch.tensor([1, 3, 7])
    unused = torch.tensor([0, 2, 4, 5, 6, 8, 9])
    # decoupled: w <- w * (1 - lr * decay) before the same Adam update
    assert torch.allclose(gap[used], -0.1 * 0.5 * start[used], atol=1e-6)
    assert torch.equal(decayed.users.weight[unused], start[unused])


def test_dense_only_turns_the_tables_dense_for_adamw():
    net = _Net()
    opt = _one_step(net, dense_only=True)
    assert [type(p).__name__ for p in opt.parts] == ["AdamW"]
    assert not net.users.sparse and not net.users.weight.grad.is_sparse
    assert sparse_tables(net) == []


@pytest.mark.parametrize("model", [BPRMF(dim=4), NeuMF(dim=4)], ids=["bpr", "neumf"])
def test_bpr_and_neumf_declare_sparse_tables(planted_dataset, model):
    model._start_fit(planted_dataset.all())
    model.net_ = model._build_net()
    tables = sparse_tables(model.net_)
    assert len(tables) == (2 if isinstance(model, BPRMF) else 4)
    assert {t.num_embeddings for t in tables} == {
        planted_dataset.n_users,
        planted_dataset.n_items,
    }
