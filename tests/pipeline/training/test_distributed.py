"""Data-parallel training: the building blocks, and P gloo processes against one at the same global batch.

The slow tests start 2 gloo processes with ``torch.multiprocessing`` in torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and compare them with one process
without any process group: the finetune (``adapt_clip``), proposer (``train_proposer``), CLIP
pretraining (``pretrain_clip``), Mask-Adapter (``train_adapter``) and text-prompt
(``learn_text_prompts``) loops must give the same loss curve (1e-3 relative) and the same
accuracy (±1 point), and 2-process finetune and pretraining runs killed after an epoch and
resumed must end with the weights of uninterrupted ones.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from core.launch import relaunch_under_torchrun, torchrun_command
from model.clip import build_clip
from model.mask_adapter import MaskAdapter, MaskAdapterConfig
from model.proposer import SetCriterion, build_proposer, load_proposer_config, semantic_targets
from model.text import load_templates
from model.text_prompts import TextPrompts, prompted_class_embeddings
from pipeline.training.augment import augment_batch, random_resized_crops, random_resized_crops_with_masks
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.clip_adaptation import AdaptConfig, adapt_clip, cut_crops, noun_template_embeddings
from pipeline.training.clip_pretrain import PretrainConfig, pretrain_clip
from pipeline.training.distributed import (
    DistributedConfig,
    Ranks,
    current,
    gather_rows,
    process_group,
    shard_bounds,
    sum_across,
    sum_terms,
    sync_gradients,
)
from pipeline.training.mask_adapter import (
    AdapterTrainConfig,
    BatchPreparer,
    StreamingData,
    batch_layout,
    draw_masks,
    prepare_data,
    train_adapter,
)
from pipeline.training.mask_pairs import MaskedCropDataset
from pipeline.training.proposer import ProposerTrainConfig, load_training_set, train_proposer
from pipeline.training.text_prompts import TextPromptConfig, learn_text_prompts
from tests.doubles import COLOURS, NOUNS, mask_pairs, save_then_die, shapes

CPU = torch.device("cpu")
FINETUNE = dict(epochs=4, batch_size=8, lr=1e-3, warmup_steps=2, crop_scale=[0.8, 1.0])  # 6 steps an epoch
PROPOSER = ProposerTrainConfig(
    epochs=5,
    batch_size=4,
    lr=3e-3,
    warmup_steps=2,
    crop_size=28,  # 4 steps an epoch
    scale_range=(0.8, 1.2),
    precision="fp32",
    seed=3,
)
PRETRAIN = PretrainConfig(epochs=5, batch_size=8, lr=2e-3, warmup_steps=2, crop_scale=(0.6, 1.0))  # 32 images: 4 steps
ADAPTER = AdapterTrainConfig(
    warmup_epochs=2,
    mixed_epochs=3,
    batch_size=4,
    lr=1e-2,
    warmup_steps=2,  # 16: 4 steps
    match_iou=0.0,
    match_threshold=0.0,
    precision="fp32",
)
ADAPTER_ARCHITECTURE = MaskAdapterConfig(clip_dim=128, num_maps=2, hidden=8, blocks=1, mask_prior=4.0)
TEXT_PROMPTS = TextPromptConfig(
    n_ctx=4,
    epochs=4,
    batch_size=8,
    samples_per_class=None,
    lr=0.5,  # 48 pairs: 6 steps
    warmup_steps=2,
)
PROMPT_CLASSES = [*NOUNS, "grass"]  # 5 classes: the processes embed 2 and 3 of them


# ----------------------------------------------------------------------------- tiny worlds
def tiny_clip():
    return build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=32)


def proposer_text() -> torch.Tensor:
    return F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def tiny_proposer():
    torch.manual_seed(0)
    return build_proposer(load_proposer_config("proposer-tiny"))


def captioned_images(n: int = 32) -> tuple[np.ndarray, list[list[str]]]:
    """``n`` noisy 32-px pictures, each in the colour of its noun (of :data:`NOUNS`), with two captions."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (n, 32, 32, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        images[i, 4:28, 4:28] = COLOURS[i % 4]
        captions.append([f"a photo of a {NOUNS[i % 4]}", f"{NOUNS[i % 4]} on the grass"])
    return images, captions


def tiny_adapter() -> MaskAdapter:
    torch.manual_seed(0)
    return MaskAdapter(ADAPTER_ARCHITECTURE)


def adapter_inputs():
    """16 shapes scenes (3 seen classes), random class embeddings and the preparer with a tiny proposer
    (every proposal touching a segment matches it, so the mixed phase has pairs)."""
    images = load_training_set(shapes(16), threads=1)
    text = F.normalize(torch.randn(3, 128, generator=torch.Generator().manual_seed(1)), dim=-1)
    torch.manual_seed(0)
    proposer = build_proposer(dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=128)).eval()
    clip = tiny_clip()
    prepare = BatchPreparer(tiny_adapter().dense_clip(clip.model), clip.mean, clip.std, proposer, text, ADAPTER)
    return images, prepare, text


# ----------------------------------------------------------------------------- what each process runs
def _join(rank: int, world_size: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)


class Killed(Exception):
    pass


def finetune_worker(rank, world_size, port, pairs, checkpoint_dir, out, die_after=None):
    _join(rank, world_size, port)
    if die_after is not None:
        Checkpointer.save = save_then_die(die_after, Killed)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        bundle = tiny_clip()
        log = adapt_clip(bundle, pairs, AdaptConfig.from_params(FINETUNE), checkpoint_dir=checkpoint_dir, desc="t")
    if ranks.is_main:
        torch.save({"state": bundle.model.visual.state_dict(), "rows": log.rows}, out)


def proposer_worker(rank, world_size, port, data, checkpoint_dir, out):
    _join(rank, world_size, port)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        model = tiny_proposer()
        log = train_proposer(model, data, proposer_text(), PROPOSER, device=CPU, checkpoint_dir=checkpoint_dir)
    if ranks.is_main:
        torch.save({"state": model.state_dict(), "rows": log.rows}, out)


def pretrain_worker(rank, world_size, port, images, captions, checkpoint_dir, out, die_after=None):
    _join(rank, world_size, port)
    if die_after is not None:
        Checkpointer.save = save_then_die(die_after, Killed)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        bundle = tiny_clip()
        log = pretrain_clip(bundle, images, captions, PRETRAIN, checkpoint_dir=checkpoint_dir)
    if ranks.is_main:
        torch.save({"state": bundle.model.state_dict(), "rows": log.rows}, out)


def adapter_worker(rank, world_size, port, data, text, checkpoint_dir, out):
    _join(rank, world_size, port)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        adapter = tiny_adapter()
        log = train_adapter(
            adapter,
            adapter.dense_clip(tiny_clip().model),
            data,
            text,
            10.0,
            ADAPTER,
            checkpoint_dir=checkpoint_dir,
            identity="t",
        )
    if ranks.is_main:
        torch.save({"state": adapter.state_dict(), "rows": log.rows}, out)


def text_prompts_worker(rank, world_size, port, pairs, checkpoint_dir, out):
    _join(rank, world_size, port)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        bundle = tiny_clip()
        log = learn_text_prompts(bundle, pairs, PROMPT_CLASSES, TEXT_PROMPTS, checkpoint_dir=checkpoint_dir, desc="t")
    if ranks.is_main:
        torch.save({"state": bundle.text_prompts.state_dict(), "rows": log.rows}, out)


def layout_worker(rank, world_size, port, data, out):
    """batch_layout and draw_masks over this process's half of a batch of 4."""
    _join(rank, world_size, port)
    with process_group(DistributedConfig(world_size, "gloo"), CPU):
        start, stop = shard_bounds(4, current())
        rows = data.batch(range(start, stop))
        layout = batch_layout(rows)
        step = draw_masks(rows, True, ADAPTER, np.random.default_rng(5), layout=layout, part_of=(start, 4))
    torch.save({"layout": layout, "step": step}, out / f"rank{rank}.pt")


def collectives_worker(rank, world_size, port, out):
    """gather_rows with uneven counts and its gradient, sum_across, sum_terms and sync_gradients."""
    _join(rank, world_size, port)
    with process_group(DistributedConfig(world_size, "gloo"), CPU) as ranks:
        x = torch.full((rank + 1, 2), float(rank), requires_grad=True)  # rank r holds r + 1 rows of r
        gathered = gather_rows(x)
        (gathered.sum() * (rank + 1)).backward()
        layer = torch.nn.Linear(2, 1)
        torch.nn.init.constant_(layer.weight, 1.0)
        layer(torch.full((1, 2), float(rank + 1))).sum().backward()
        sync_gradients(layer.parameters())
        result = {
            "ranks": ranks,
            "gathered": gathered.detach(),
            "grad": x.grad,
            "sum": sum_across(torch.tensor([rank + 1.0])),
            "terms": sum_terms({"a": torch.tensor(1.0), "b": torch.tensor(float(rank))}),
            "weight_grad": layer.weight.grad,
        }
    torch.save(result, out / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(worker, world_size: int, *args) -> None:
    mp.spawn(worker, args=(world_size, free_port(), *args), nprocs=world_size, join=True)


# ----------------------------------------------------------------------------- fast: the pieces
def test_without_torchrun_there_is_one_process_and_no_group(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with process_group(DistributedConfig(), CPU) as ranks:
        assert ranks == Ranks(0, 1, 0) and ranks.is_main and not ranks.active
        assert not torch.distributed.is_initialized() and current() == ranks
        x = torch.ones(3, requires_grad=True)
        assert gather_rows(x) is x and sum_across(x) is x
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: no group either
    with process_group(DistributedConfig(backend="gloo"), CPU) as ranks:
        assert ranks == Ranks() and not torch.distributed.is_initialized()


def test_settings_and_shards_are_checked() -> None:
    assert DistributedConfig.from_params(None, "p") == DistributedConfig(1, "auto")
    assert DistributedConfig.from_params({"nproc_per_node": 2, "backend": "gloo"}, "p").nproc_per_node == 2
    with pytest.raises(ValueError, match=r"params.yaml:finetune.distributed: unknown keys \['nodes'\]"):
        DistributedConfig.from_params({"nodes": 2}, "params.yaml:finetune.distributed")
    with pytest.raises(ValueError, match="p: backend must be one of"):
        DistributedConfig.from_params({"backend": "mpi"}, "p")
    with pytest.raises(ValueError, match="nproc_per_node"):
        DistributedConfig(nproc_per_node=0)
    assert [shard_bounds(12, Ranks(r, 3)) for r in range(3)] == [(0, 4), (4, 8), (8, 12)]
    assert [shard_bounds(5, Ranks(r, 2), even=False) for r in range(2)] == [(0, 2), (2, 5)]
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by 3 processes"):
        shard_bounds(10, Ranks(0, 3))
    assert Ranks(1, 2, 1).device(torch.device("cuda")) == torch.device("cuda", 1)
    assert Ranks().device(torch.device("cuda")) == torch.device("cuda")


def test_only_the_main_process_announces_and_names_the_processes(capsys) -> None:
    Ranks().announce("stage: 4 images")
    Ranks(0, 3).announce("stage: 12 images")
    Ranks(2, 3).announce("stage: not printed")
    assert capsys.readouterr().out == "stage: 4 images\nstage: 12 images, 3 processes\n"


def test_a_split_batch_gets_the_draws_of_the_whole_batch() -> None:
    images = torch.rand(6, 3, 16, 16)
    masks = torch.rand(6, 16, 16) > 0.5
    labels = torch.randint(-1, 3, (6, 16, 16))
    whole = random_resized_crops_with_masks(images, masks, 12, (0.5, 1.0), torch.Generator().manual_seed(4))
    aug = dict(scale_range=(0.7, 1.3), hflip=True, crop_size=12)
    whole_aug = augment_batch(images, labels, torch.Generator().manual_seed(4), **aug)
    for start, stop in ((0, 2), (2, 6)):
        part = random_resized_crops_with_masks(
            images[start:stop], masks[start:stop], 12, (0.5, 1.0), torch.Generator().manual_seed(4), part_of=(start, 6)
        )
        assert torch.equal(part[0], whole[0][start:stop]) and torch.equal(part[1], whole[1][start:stop])
        part_aug = augment_batch(
            images[start:stop], labels[start:stop], torch.Generator().manual_seed(4), part_of=(start, 6), **aug
        )
        assert torch.equal(part_aug[0], whole_aug[0][start:stop])
        assert torch.equal(part_aug[1], whole_aug[1][start:stop])
    with pytest.raises(ValueError, match="do not lie in a batch of 6"):
        random_resized_crops(images[:4], 12, (0.5, 1.0), torch.Generator(), part_of=(4, 6))


def test_the_launcher_relaunches_only_when_asked(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert relaunch_under_torchrun("stages.proposer", [], 1) is None
    command = torchrun_command("stages.clip_adaptation", ["finetune"], 2)
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "stages.clip_adaptation",
        "finetune",
    ]
    monkeypatch.setenv("WORLD_SIZE", "2")  # already under torchrun: run here
    assert relaunch_under_torchrun("stages.proposer", [], 2) is None


def test_set_criterion_with_a_sum_across_one_process_is_the_plain_criterion() -> None:
    """The split path (local weighted sums over the batch's normalisers) computes the same terms."""
    data = load_training_set(shapes(4), threads=1)
    model = tiny_proposer()
    images, labels = data.batch(range(4))
    outputs = model(images.float() / 255, proposer_text())
    targets = [semantic_targets(label) for label in labels]
    criterion = SetCriterion(model.config.loss)
    plain = criterion(outputs, targets)
    summed = []
    split = criterion(outputs, targets, lambda t: summed.append(t) or t)
    layers = 1 + (len(outputs["aux_outputs"]) if model.config.loss.deep_supervision else 0)
    assert len(summed) == 1 + layers  # the number of masks, then each supervised layer's weight sum
    for name, value in plain.items():
        assert torch.allclose(split[name], value, rtol=1e-6), name


# ----------------------------------------------------------------------------- slow: 2 gloo processes
@pytest.mark.slow
def test_collectives_across_two_processes(tmp_path) -> None:
    spawn(collectives_worker, 2, tmp_path)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for rank, result in enumerate(results):
        assert result["ranks"] == Ranks(rank, 2, rank)
        assert torch.equal(result["gathered"], torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))
        assert torch.equal(result["grad"], torch.full((rank + 1, 2), float(rank + 1)))  # only the local rows
        assert result["sum"].item() == 3.0
        assert {k: v.item() for k, v in result["terms"].items()} == {"a": 2.0, "b": 1.0}
        assert torch.equal(result["weight_grad"], torch.full((1, 2), 3.0))  # 1 + 2: summed


@pytest.fixture(scope="module")
def finetune_runs(tmp_path_factory):
    """The finetune loop on 48 pairs, batch 8, 4 epochs (24 steps): one process, and two gloo processes."""
    root = tmp_path_factory.mktemp("finetune")
    pairs = mask_pairs(root, 12)
    bundle = tiny_clip()
    log = adapt_clip(bundle, pairs, AdaptConfig.from_params(FINETUNE), checkpoint_dir=root / "one", desc="t")
    one = {"state": bundle.model.visual.state_dict(), "rows": log.rows, "bundle": bundle}
    spawn(finetune_worker, 2, pairs, root / "two", root / "two.pt")
    return pairs, one, torch.load(root / "two.pt", weights_only=True), root


def crop_accuracy(bundle, pairs) -> float:
    """Top-1 accuracy (%) of the pairs' masked crops against the template-averaged noun texts."""
    nouns = sorted({p.noun for p in pairs})
    text = F.normalize(noun_template_embeddings(bundle, nouns, load_templates()).mean(1), dim=-1)
    dataset = MaskedCropDataset(pairs, nouns, size=bundle.image_size, mean=bundle.mean, std=bundle.std)
    crops, _, labels, valid = cut_crops(dataset, 0)
    with torch.no_grad():
        predicted = (bundle.encode_image(crops[valid].float()) @ text.t()).argmax(1)
    return 100.0 * float((predicted == labels[valid]).float().mean())


def assert_same_curve(one_rows, two_rows, rtol=1e-3) -> float:
    """Same steps, learning rates and loss terms (``rtol`` relative); returns the largest relative difference."""
    assert len(one_rows) == len(two_rows) >= 20
    for a, b in zip(one_rows, two_rows):
        assert a["step"] == b["step"] and a["lr"] == b["lr"]
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=rtol, abs=1e-6), (a["step"], key)
    return max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-12) for a, b in zip(one_rows, two_rows) for k in a)


@pytest.mark.slow
def test_two_processes_finetune_like_one(finetune_runs) -> None:
    pairs, one, two, _ = finetune_runs
    assert_same_curve(one["rows"], two["rows"])
    assert one["rows"][-1]["loss"] < one["rows"][0]["loss"]
    worst = max((one["state"][k] - two["state"][k]).abs().max().item() for k in one["state"])
    assert worst < 1e-4  # float sums in another order (the gradient all-reduce), not another training
    twin = tiny_clip()
    twin.model.visual.load_state_dict(two["state"])
    assert crop_accuracy(twin, pairs) == pytest.approx(crop_accuracy(one["bundle"], pairs), abs=1.0)


@pytest.mark.slow
def test_two_processes_killed_after_epoch_1_resume_to_the_same_weights(finetune_runs) -> None:
    pairs, _, two, root = finetune_runs
    with pytest.raises(Exception, match="killed after epoch 1"):
        spawn(finetune_worker, 2, pairs, root / "killed", root / "killed.pt", 1)
    assert [e for e, _ in Checkpointer(root / "killed").checkpoints()] == [1]
    spawn(finetune_worker, 2, pairs, root / "killed", root / "resumed.pt")
    resumed = torch.load(root / "resumed.pt", weights_only=True)
    assert resumed["rows"] == two["rows"]
    assert all(torch.equal(resumed["state"][k], two["state"][k]) for k in two["state"])


def semantic_accuracy(model, data) -> float:
    """Pixel accuracy (%) of the proposer's semantic maps (sum over queries of class prob x mask prob)."""
    images, labels = data.batch(range(len(data)))
    model.eval()
    with torch.no_grad():
        out = model(images.float() / 255, proposer_text())
    probs = out["pred_logits"].softmax(-1)[..., :-1]
    masks = F.interpolate(out["pred_masks"], size=labels.shape[-2:], mode="bilinear").sigmoid()
    predicted = torch.einsum("bqc,bqhw->bchw", probs, masks).argmax(1)
    known = labels >= 0
    return 100.0 * float((predicted[known] == labels[known]).float().mean())


@pytest.mark.slow
def test_two_processes_train_the_proposer_like_one(tmp_path) -> None:
    data = load_training_set(shapes(16), threads=1)
    one = tiny_proposer()
    log = train_proposer(one, data, proposer_text(), PROPOSER, device=CPU, checkpoint_dir=tmp_path / "one")
    spawn(proposer_worker, 2, data, tmp_path / "two", tmp_path / "two.pt")
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert_same_curve(log.rows, two["rows"])
    assert log.rows[-1]["loss"] < log.rows[0]["loss"]
    twin = tiny_proposer()
    twin.load_state_dict(two["state"])
    assert semantic_accuracy(twin, data) == pytest.approx(semantic_accuracy(one, data), abs=1.0)


# ----------------------------------------------------------------------------- CLIP pretraining, Mask-Adapter, prompts
@pytest.fixture(scope="module")
def pretrain_runs(tmp_path_factory):
    """CLIP pretraining on 32 captioned images, batch 8, 5 epochs (20 steps): one process, and two."""
    root = tmp_path_factory.mktemp("pretrain")
    images, captions = captioned_images()
    bundle = tiny_clip()
    log = pretrain_clip(bundle, images, captions, PRETRAIN, checkpoint_dir=root / "one")
    one = {"state": bundle.model.state_dict(), "rows": log.rows, "bundle": bundle}
    spawn(pretrain_worker, 2, images, captions, root / "two", root / "two.pt")
    return images, captions, one, torch.load(root / "two.pt", weights_only=True), root


def caption_accuracy(bundle, images) -> float:
    """Top-1 accuracy (%) of the pictures against "a photo of a <noun>" for the nouns of :data:`NOUNS`."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        image = F.normalize(bundle.model.encode_image((x - bundle.mean.view(1, 3, 1, 1)) / bundle.std.view(1, 3, 1, 1)))
        text = F.normalize(bundle.model.encode_text(bundle.tokenize([f"a photo of a {noun}" for noun in NOUNS])))
    labels = torch.arange(len(images)) % len(NOUNS)
    return 100.0 * float(((image @ text.t()).argmax(1) == labels).float().mean())


@pytest.mark.slow
def test_two_processes_pretrain_clip_like_one(pretrain_runs) -> None:
    images, _, one, two, _ = pretrain_runs
    worst = assert_same_curve(one["rows"], two["rows"])  # loss and logit_scale (the scale's gradient counted once)
    assert one["rows"][-1]["loss"] < one["rows"][0]["loss"]
    # float sums in another order, which Adam's normalisation lifts on the weights of tiny gradients (lr 2e-3)
    assert max((one["state"][k] - two["state"][k]).abs().max().item() for k in one["state"]) < 1e-3
    twin = tiny_clip()
    twin.model.load_state_dict(two["state"])
    accuracy = caption_accuracy(one["bundle"], images), caption_accuracy(twin, images)
    print(
        f"pretraining, 1 vs 2 processes: loss curves within {worst:.1e} relative, "
        f"accuracy {accuracy[0]:.1f} vs {accuracy[1]:.1f}"
    )
    assert accuracy[1] == pytest.approx(accuracy[0], abs=1.0)


@pytest.mark.slow
def test_two_processes_pretraining_killed_after_epoch_2_resume_to_the_same_weights(pretrain_runs) -> None:
    images, captions, _, two, root = pretrain_runs
    with pytest.raises(Exception, match="killed after epoch 2"):
        spawn(pretrain_worker, 2, images, captions, root / "killed", root / "killed.pt", 2)
    assert [e for e, _ in Checkpointer(root / "killed").checkpoints()] == [2]
    spawn(pretrain_worker, 2, images, captions, root / "killed", root / "resumed.pt")
    resumed = torch.load(root / "resumed.pt", weights_only=True)
    assert resumed["rows"] == two["rows"]
    assert all(torch.equal(resumed["state"][k], two["state"][k]) for k in two["state"])


def segment_accuracy(adapter, data, text) -> float:
    """Top-1 accuracy (%) of every ground-truth segment's adapter embedding against the classes and the void."""
    every = dataclasses.replace(ADAPTER, max_gt_masks=100)
    step = draw_masks(data, False, every, np.random.default_rng(0))
    with torch.no_grad():
        embeddings = adapter.embed(adapter.dense_clip(tiny_clip().model), data.dense, step.masks, data.projected)
        classifier = F.normalize(torch.cat([text, adapter.void[None]]), dim=-1)
        predicted = (F.normalize(embeddings.flatten(0, 1), dim=-1) @ classifier.t()).argmax(1)
    labels = step.labels.flatten()
    valid = labels >= 0
    return 100.0 * float((predicted[valid] == labels[valid]).float().mean())


@pytest.mark.slow
def test_batch_layout_and_mask_draws_of_a_split_batch_are_the_whole_batchs(tmp_path) -> None:
    images, prepare, _ = adapter_inputs()
    data = prepare_data(images, prepare, batch_size=16)
    whole = draw_masks(data.batch(range(4)), True, ADAPTER, np.random.default_rng(5))
    spawn(layout_worker, 2, data, tmp_path)
    for rank in range(2):
        part = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert part["layout"] == [[len(c) for c in data.candidates[i]] for i in range(4)]
        rows = slice(2 * rank, 2 * rank + 2)
        assert torch.equal(part["step"].masks, whole.masks[rows])
        assert torch.equal(part["step"].labels, whole.labels[rows])
        width = whole.labels.shape[1]
        mine = (whole.proposal >= 2 * rank * width) & (whole.proposal < (2 * rank + 2) * width)
        assert torch.equal(part["step"].proposal, whole.proposal[mine] - 2 * rank * width)
        assert torch.equal(part["step"].segment, whole.segment[mine] - 2 * rank * width)
    assert whole.proposal.numel() > 0


@pytest.mark.slow
def test_two_processes_train_the_mask_adapter_like_one(tmp_path) -> None:
    """One process on the prepared set; two on it, and two streaming it (each prepares only its rows)."""
    images, prepare, text = adapter_inputs()
    data = prepare_data(images, prepare, batch_size=16)
    one = tiny_adapter()
    log = train_adapter(
        one, one.dense_clip(tiny_clip().model), data, text, 10.0, ADAPTER, checkpoint_dir=tmp_path / "one", identity="t"
    )
    assert log.rows[-1]["loss"] < log.rows[0]["loss"] and sum(r["consistency"] > 0 for r in log.rows) >= 12
    expected = segment_accuracy(one, data, text)
    for name, two_data in (("prepared", data), ("streamed", StreamingData(images, prepare))):
        spawn(adapter_worker, 2, two_data, text, tmp_path / name, tmp_path / f"{name}.pt")
        two = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        worst = assert_same_curve(log.rows, two["rows"])
        assert max((one.state_dict()[k] - v).abs().max().item() for k, v in two["state"].items()) < 1e-4
        twin = tiny_adapter()
        twin.load_state_dict(two["state"])
        accuracy = segment_accuracy(twin, data, text)
        print(
            f"mask_adapter ({name}), 1 vs 2 processes: loss curves within {worst:.1e} relative, "
            f"segment accuracy {expected:.1f} vs {accuracy:.1f}"
        )
        assert accuracy == pytest.approx(expected, abs=1.0)


def prompt_accuracy(bundle, pairs) -> float:
    """Top-1 accuracy (%) of the pairs' masked crops against the prompted classes."""
    dataset = MaskedCropDataset(pairs, PROMPT_CLASSES, size=bundle.image_size, mean=bundle.mean, std=bundle.std)
    crops, _, labels, valid = cut_crops(dataset, 0)
    with torch.no_grad():
        text = prompted_class_embeddings(bundle.model, bundle.tokenizer, bundle.text_prompts, PROMPT_CLASSES)
        predicted = (bundle.encode_image(crops[valid].float()) @ text.t()).argmax(1)
    return 100.0 * float((predicted == labels[valid]).float().mean())


@pytest.mark.slow
def test_two_processes_learn_text_prompts_like_one(tmp_path) -> None:
    pairs = mask_pairs(tmp_path, 12, painted=True)
    one = tiny_clip()
    log = learn_text_prompts(one, pairs, PROMPT_CLASSES, TEXT_PROMPTS, checkpoint_dir=tmp_path / "one", desc="t")
    spawn(text_prompts_worker, 2, pairs, tmp_path / "two", tmp_path / "two.pt")
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    worst = assert_same_curve(log.rows, two["rows"])  # loss and batch accuracy
    assert log.epoch_means(3)["loss"] < log.epoch_means(0)["loss"]
    assert (one.text_prompts.ctx - two["state"]["ctx"]).abs().max().item() < 1e-4
    twin = tiny_clip()
    twin.text_prompts = TextPrompts(TEXT_PROMPTS.n_ctx, one.text_prompts.width)
    twin.text_prompts.load_state_dict(two["state"])
    accuracy = prompt_accuracy(one, pairs), prompt_accuracy(twin, pairs)
    print(
        f"text_prompts, 1 vs 2 processes: loss curves within {worst:.1e} relative, "
        f"accuracy {accuracy[0]:.1f} vs {accuracy[1]:.1f}"
    )
    assert accuracy[1] == pytest.approx(accuracy[0], abs=1.0)
