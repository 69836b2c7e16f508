"""The GPU path (issue 13, item 4): every neural model gives the CPU's answers on CUDA.

Skipped without a CUDA device; bench/gpu_check.sh runs it on a GPU machine with
RECSCOPE_DEVICE=cuda. The models are the registry's neural ones (`trains_with_loop`), so a
model joins by being registered.

Bit-equal training on both devices is impossible: the loop permutes batches and samples
negatives with a generator on the device, and CUDA's and the CPU's random streams differ. So:
1. weights trained for one seeded epoch on the CPU, loaded onto CUDA, score every user and
   item like the CPU model (TF32 matmuls, as the app runs them: within 1% of the score scale,
   and the same top 10 up to near-ties);
2. trained from the same seed on each device, test NDCG@10 agrees within noise: the mean of
   the paired per-user differences is within 3 standard errors (+0.02) of zero.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.split import split
from core.device import pick_device
from core.errors import ParameterError
from core.eval.evaluate import evaluate
from core.models import available, make_model, model_class

NO_CUDA = "no CUDA device: set RECSCOPE_DEVICE=cuda on a GPU machine"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
NEURAL = [name for name in available() if model_class(name).trains_with_loop]
EPOCHS = 20  # when a model declares no SUITE_PARAMS (the protocol suite's rule)
GPU = "cuda"  # the device compared with the CPU


def _params(name: str, device: str, **extra) -> dict:
    declared = getattr(model_class(name), "SUITE_PARAMS", None)
    params = dict(declared) if declared is not None else {"epochs": EPOCHS}
    return {**params, "device_choice": device, "seed": 0, **extra}


@pytest.fixture(scope="module")
def parts(planted_dataset):
    return split(planted_dataset, "loo", seed=42)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_without_a_gpu_is_one_sentence(monkeypatch):
    monkeypatch.setenv("RECSCOPE_DEVICE", "cuda")
    with pytest.raises(ParameterError, match="no CUDA GPU is visible; use --device cpu"):
        pick_device()


@needs_cuda
def test_recscope_device_cuda_puts_models_on_the_gpu(monkeypatch, parts):
    monkeypatch.setenv("RECSCOPE_DEVICE", "cuda")
    assert pick_device().type == "cuda" and pick_device("cpu").type == "cpu"
    name = NEURAL[0]
    model = make_model(name, **_params(name, None, epochs=1)).fit(parts.train)
    assert model.device.type == "cuda"
    assert {p.device.type for p in model.net_.parameters()} == {"cuda"}


@needs_cuda
@pytest.mark.parametrize("name", NEURAL)
def test_cpu_weights_score_the_same_on_cuda(name, parts, tmp_path):
    cpu = make_model(name, **_params(name, "cpu", epochs=1)).fit(parts.train, parts.valid)
    cpu.save(tmp_path / name)
    gpu = model_class(name).load(tmp_path / name, device=GPU)
    assert gpu.device.type == GPU
    known = parts.known_for("test")
    cpu.set_history(known)
    gpu.set_history(known)
    users = np.arange(parts.train.n_users)
    with torch.inference_mode():
        a = cpu.score(users).float().cpu()  # (U, I)
        b = gpu.score(users).float().cpu()  # (U, I)
    scale = float(a[torch.isfinite(a)].abs().max())
    torch.testing.assert_close(b, a, rtol=1e-2, atol=1e-2 * scale)
    top_a, top_b = torch.topk(a, 10).indices, torch.topk(b, 10).indices
    overlap = (top_a[:, :, None] == top_b[:, None, :]).any(-1).float().mean()
    assert overlap >= 0.9, f"{name}: top-10 overlap {overlap:.3f} between CPU and CUDA"


@needs_cuda
@pytest.mark.parametrize("name", NEURAL)
def test_trained_on_cuda_ndcg_agrees_with_cpu_within_noise(name, parts):
    per_user = {}
    for device in ("cpu", GPU):
        model = make_model(name, **_params(name, device)).fit(parts.train, parts.valid)
        table = evaluate(model, parts, part="test", ks=(10,), beyond=False).per_user
        per_user[device] = table.set_index("user_code")["ndcg@10"].sort_index()
    diff = (per_user[GPU] - per_user["cpu"]).dropna().to_numpy()
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    cpu_ndcg, cuda_ndcg = per_user["cpu"].mean(), per_user[GPU].mean()
    assert abs(diff.mean()) <= 3 * se + 0.02, (
        f"{name}: NDCG@10 cuda {cuda_ndcg:.4f} vs cpu {cpu_ndcg:.4f} (se {se:.4f})"
    )
    pop = make_model("pop").fit(parts.train)
    pop_ndcg = evaluate(pop, parts, part="test", ks=(10,), beyond=False).metrics["ndcg@10"]
    assert cuda_ndcg > pop_ndcg, f"{name} on cuda: NDCG@10 {cuda_ndcg:.4f} <= pop {pop_ndcg:.4f}"
