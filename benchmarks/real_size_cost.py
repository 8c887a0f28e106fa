"""Expected GPU compute of each DVC stage of the real recipe (``configs/real-coco-vit-b16.yaml``), from FLOP counts.

No GPU and no COCO are needed: the models are built at their real sizes with random weights
(open_clip ViT-B-16 and convnext_large_d_320 through :func:`model.clip.build_clip`, the
``proposer-r50`` proposer, a Mask-Adapter at the recipe's widths), and
``torch.utils.flop_counter.FlopCounterMode`` counts one unit of work of each, batch 1:

* the ViT-B/16 image tower on one 224-px masked crop;
* its text tower on one ViLD prompt, cut at the last EOT (:func:`model.text_tower.encode_tokens`),
  on one caption at the full 77-token context (``encode_text``, as ``base_clip_longer`` calls it),
  and on the 171 COCO-Stuff classes (177 names with their VOC synonyms) behind 16 learned context
  tokens (one ``text_prompts`` step);
* dense passes (:class:`model.dense_clip.DenseClip`: the pass and the head at every position)
  of ViT-B/16 and ConvNeXt-L at 640 × 640 (``mask_adapter`` training) and at the evaluation
  size (640-pixel shorter side of a 4:3 image, rounded to the tower's stride);
* the proposer forward at 512 × 512 (``proposer`` training), 480 × 640 (a COCO image, ``mine``),
  640 × 640 (``mask_adapter``) and 640 × 853 (``propose``), class head included;
* the Mask-Adapter: its maps (mask branch and ConvNeXt trunk, once per mask) and the pooling of
  the K maps per mask (attention queries through the ViT's 12 blocks, or a weighted mean on the
  ConvNeXt), split into a per-image and a per-mask part;
* the semantic map Σ_q p(c|q)·mask_q at full resolution (100 proposals, each benchmark's classes).

Each stage's FLOPs are these units times its work in the recipe (epochs, images, pairs, crops:
the constants below and the recipe's own settings), with the rules

* a trained part costs 3 × its forward (forward, then backward for activations and weights);
* a frozen part that only passes gradients back (the image tower under mask prompts, the text
  tower under learned text prompts, the pooling between the adapter and its loss) costs 2 ×;
* a frozen part that passes none (the dense CLIP pass, the proposer, crops for learned text
  prompts, every evaluation) costs 1 ×.

Hours = FLOPs ÷ a sustained rate, ``--tflops`` (default 125: 40 % of an A100's 312 dense bf16
TFLOPS). The stages that run in float32 in the recipe (``mine``, ``finetune*``, ``prompt_tune``,
``text_prompts``, ``base_clip_longer``, ``crops``, ``propose``, ``evaluate*``, and the CLIP pass
and proposer of ``mask_adapter``: nothing sets bf16 or TF32 for them) get ``--fp32-tflops``
instead, by default the same rate: an A100 computes plain fp32 matmuls at 19.5 TFLOPS peak, so
there they would take several times longer unless run in bf16 or with TF32 allowed.

The counts leave out everything that is not a matmul or convolution: JPEG decoding and
resizing, data loading, the CPU side of mining (regions, NMS, crop cutting, matching), losses,
Hungarian matching, softmax, normalisation and other memory-bound element-wise work, optimizer
steps. Real times are therefore higher than these figures, by a factor that cannot be
known without a GPU (the data pipeline can dominate a stage whose model is small).
Numbers that are estimates rather than settings are marked so in the constants below.

    python benchmarks/real_size_cost.py [--tflops 125] [--fp32-tflops 125] [--pairs 1300000]
        [--adapter-masks 32] [--recipe configs/real-coco-vit-b16.yaml] [--params params.yaml] [--threads 2]

40-60 s on 2 CPU cores, 2.5 GB of memory: the text towers run on the CPU (in train mode, so that
attention takes the plain path: the CPU's fused attention kernels are not in the counter's table),
every image-side count on PyTorch's ``meta`` device (shapes only, no arithmetic). The ViT-B/16
counts are checked against a count by hand (the script stops if they differ by over 1 %).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.classnames import split_synonyms
from model.clip import build_clip
from model.dense_clip import DenseClip
from model.mask_adapter import MaskAdapter, MaskAdapterConfig
from model.proposer import build_proposer, load_proposer_config
from model.scoring import semantic_map
from model.text import load_templates
from model.text_prompts import prompt_tokens
from model.text_tower import encode_tokens
from pipeline.datasets.vocab import class_names
from pipeline.world.real import coco_classes

ROOT = Path(__file__).resolve().parents[1]
META = torch.device("meta")

# ---------------------------------------------------------------- the work of the real recipe
COCO_IMAGES = 118_287  # COCO 2017 train images (= COCO-Stuff training label maps)
COCO_IMAGE_SIZE = (480, 640)  # a typical COCO image (mine reads images at their own size)
MINED_PAIRS = 1_300_000  # mask-noun pairs mined from COCO Captions (OVSeg paper: ~1.3 M); --pairs
MINED_NOUNS = 20_000  # ESTIMATE: distinct caption nouns in the pairs (text tables of mine/finetune/mpt)
SEGMENTS_PER_IMAGE = 9.5  # ESTIMATE: seen-class COCO-Stuff segments per image (one per class present)
MINE_CROPS_PER_IMAGE = 100  # mine.max_proposals null: every proposal (upper bound: objectness >= 0.5 and
#   NMS drop some before the crops are cut)
EVAL_PROPOSALS = 100  # proposals per benchmark image (evaluate.max_proposals null: all of proposer-r50's)
ADAPTER_TRAIN_MASKS = 32  # masks per training image for the Mask-Adapter: the cap (max_gt_masks 32; mixed
#   phase 16 + 2 x 8 matched); the step pads to the batch's largest, so the mean
#   is lower (COCO-Stuff has ~9.5 classes per image); --adapter-masks
BENCHMARKS = {  # name: (validation images, classes, ESTIMATED ground-truth segments per image)
    "ade847": (2_000, 847, 12.0),
    "pc459": (5_105, 459, 7.0),
    "ade150": (2_000, 150, 9.0),
    "pc59": (5_105, 59, 5.0),  # PC-59 and PC-459 share the 5,105 images but are evaluated separately
    "voc20": (1_449, 20, 1.5),
}
CROP_VARIANTS = ("base", "mpt", "ft", "ft_mpt", "ft_gt", "prompts", "ft_prompts", "longer", "zsseg")
CROPS_BENCHMARK = "ade150"  # ASSUMPTION: dvc.yaml's crops stage names --benchmark demo, which a real world
#   lacks; counted on ADE-150 (the benchmark the demo stands for)
CROPS_CLIPS = 8  # CLIP folders the crops stage classifies crops with (dvc.yaml)
TEXT_BATCH = 256  # model.text.TextClassifier's prompts per text-tower call
NOUN_TABLE_BATCH = 1024  # pipeline.training.clip_adaptation.noun_template_embeddings' batch

# ---------------------------------------------------------------- counting


def gflop(fn: Callable[[], object]) -> float:
    """GFLOPs of ``fn()`` (matmuls and convolutions, 2 per multiply-add), no autograd, plain attention."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def vit_analytic_gflop(tokens: int, width: int, layers: int, patch_pixels: int, out: int) -> float:
    """A ViT's forward by hand: the blocks (projections, MLP, attention), the patch embedding, the head."""
    blocks = layers * (12 * width * width * tokens + 2 * tokens * tokens * width)
    return 2 * (blocks + 3 * patch_pixels * width * (tokens - 1) + width * out) / 1e9


def check_close(name: str, counted: float, expected: float) -> None:
    if not math.isclose(counted, expected, rel_tol=0.01):
        raise SystemExit(
            f"{name}: counted {counted:.2f} GFLOP, expected {expected:.2f} by hand: the FLOP counter "
            "misses some of the model (attention?); the figures below would be wrong"
        )


@dataclass
class Unit:
    label: str
    per: str
    gflop: float


@dataclass
class Stage:
    name: str
    work: str
    parts: list[tuple[float, str]] = field(default_factory=list)  # (GFLOP, "bf16" | "fp32")

    def add(self, gflops: float, precision: str) -> Stage:
        self.parts.append((gflops, precision))
        return self

    @property
    def pflop(self) -> float:
        return sum(g for g, _ in self.parts) / 1e6

    def hours(self, rates: dict[str, float]) -> float:
        return sum(g * 1e9 / (rates[p] * 1e12) for g, p in self.parts) / 3600

    @property
    def precision(self) -> str:
        kinds = sorted({p for g, p in self.parts if g > 0})
        return " + ".join(kinds) if kinds else "–"


def load_recipe(params_path: Path, recipe_path: Path) -> dict:
    """params.yaml with the recipe's values on top (what ``ovseg params-apply`` would give)."""

    def merge(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return merge(yaml.safe_load(params_path.read_text()), yaml.safe_load(recipe_path.read_text()))


def text_row_costs(model: torch.nn.Module) -> Callable[[int], float]:
    """GFLOPs of one text row cut at ``length`` tokens (:func:`encode_tokens`), memoised; the tower is on the CPU."""
    memo: dict[int, float] = {}

    def cost(length: int) -> float:
        if length not in memo:
            tokens = torch.full((1, length), 320, dtype=torch.long)
            tokens[0, 0], tokens[0, -1] = 49406, 49407  # SOT ... EOT (the largest id: the cut)
            memo[length] = gflop(lambda: encode_tokens(model, tokens))
        return memo[length]

    return cost


def cut_length(tokens: torch.Tensor) -> int:
    return int(tokens.argmax(dim=1).max()) + 1


def template_gflop(tokenizer, row_cost: Callable[[int], float], synonyms: list[str], templates: list[str]) -> float:
    """Every (synonym, template) prompt in :class:`model.text.TextClassifier`'s batches, each cut at its last EOT."""
    prompts = [t.format(s) for s in synonyms for t in templates]
    total = 0.0
    for start in range(0, len(prompts), TEXT_BATCH):
        batch = prompts[start : start + TEXT_BATCH]
        total += len(batch) * row_cost(cut_length(tokenizer(batch)))
    return total


def learned_prompt_gflop(tokenizer, row_cost: Callable[[int], float], synonyms: list[str], n_ctx: int) -> float:
    total = 0.0
    for start in range(0, len(synonyms), TEXT_BATCH):
        batch = synonyms[start : start + TEXT_BATCH]
        total += len(batch) * row_cost(cut_length(prompt_tokens(tokenizer, n_ctx, batch)))
    return total


def linear_in_masks(count: Callable[[int], float]) -> tuple[float, float]:
    """``(per image, per mask)`` GFLOPs of a cost linear in the number of masks, from two counts."""
    low, high = count(8), count(16)
    per_mask = (high - low) / 8
    return low - 8 * per_mask, per_mask


def adapter_gflop(
    adapter: MaskAdapter, dense_clip: DenseClip, height: int, width: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(maps, pooling)`` of :meth:`MaskAdapter.embed` on an ``height × width`` image, each ``(per image, per
    mask)``: the maps are what trains, the pooling (frozen CLIP) what passes gradients back to them."""
    dense = dense_clip.encode(torch.zeros(1, 3, height, width, device=META))
    projected = dense_clip.projected(dense)

    def maps(m: int) -> float:
        return gflop(lambda: adapter.maps(projected, torch.zeros(1, m, height, width, device=META)))

    def embed(m: int) -> float:
        return gflop(lambda: adapter.embed(dense_clip, dense, torch.zeros(1, m, height, width, device=META), projected))

    map_cost, total = linear_in_masks(maps), linear_in_masks(embed)
    return map_cost, (total[0] - map_cost[0], total[1] - map_cost[1])


def maskpool_gflop(dense_clip: DenseClip, height: int, width: int) -> tuple[float, float]:
    """``(per image, per mask)`` of plain pooling (one query or weighted mean per mask)."""
    dense = dense_clip.encode(torch.zeros(1, 3, height, width, device=META))
    return linear_in_masks(lambda m: gflop(lambda: dense_clip.pool(dense, torch.ones(1, m, *dense.grid, device=META))))


def seen_classes(cfg: dict) -> int:
    """COCO-Stuff classes with training labels under ``data.real.split`` (171 with ``none``)."""
    return sum(c["seen"] for c in coco_classes(cfg["data"]["real"].get("split") or "none"))


def eval_size(short_side: int) -> tuple[int, int]:
    return short_side, round(short_side * 4 / 3)


# ---------------------------------------------------------------- measuring


def measure(cfg: dict) -> tuple[dict[str, Unit], dict[str, float], tuple[int, int]]:
    """Every unit of work in GFLOPs; the text-embedding GFLOPs per distinct text tower; (synonyms, templates)."""
    units: dict[str, Unit] = {}

    def unit(key: str, label: str, per: str, value: float) -> float:
        units[key] = Unit(label, per, value)
        return value

    ma = cfg["mask_adapter"]
    n_ctx = int(cfg["text_prompts"]["n_ctx"])
    templates = load_templates()
    h_eval, w_eval = eval_size(int(cfg["evaluate"]["short_side"]))
    side = int(ma["image_size"])

    # ViT-B/16: text tower on the CPU (train mode: no fused attention that the counter would miss), image tower on meta.
    vit = build_clip(cfg["clip"]["model"], device="cpu", seed=0)
    vit.model.train().requires_grad_(False)  # (no parameter may require grad: FlopCounterMode's module hooks)
    vit.model.visual.to(META)
    tokenizer = vit.tokenizer
    row = text_row_costs(vit.model)
    crop = unit(
        "vit_crop",
        "ViT-B/16 image tower, one masked crop at 224 px",
        "crop",
        gflop(lambda: vit.model.visual(torch.zeros(1, 3, 224, 224, device=META))),
    )
    check_close("ViT-B/16 at 224 px", crop, vit_analytic_gflop(197, 768, 12, 16 * 16, 512))
    prompt = "a photo of a chest of drawers."
    length = cut_length(tokenizer([prompt]))
    text_prompt = unit(
        "vit_text_prompt",
        f'ViT-B/16 text tower, "{prompt}" ({length} tokens to the EOT)',
        "prompt",
        gflop(lambda: encode_tokens(vit.model, tokenizer([prompt]))),
    )
    check_close(
        "ViT-B/16 text tower",
        text_prompt,
        2 * (12 * (12 * 512 * 512 * length + 2 * length * length * 512) + 512 * 512) / 1e9,
    )
    unit(
        "vit_text_caption",
        "ViT-B/16 text tower, one caption at the full 77-token context (encode_text)",
        "caption",
        gflop(lambda: vit.model.encode_text(tokenizer(["A man riding a wave on top of a surfboard."]))),
    )
    coco = [s for c in coco_classes(cfg["data"]["real"].get("split") or "none") for s in [c["name"], *c["synonyms"]]]
    units["vit_text_prompts_step"] = Unit(
        f"ViT-B/16 text tower, the {len(coco)} COCO-Stuff names and synonyms behind {n_ctx} learned tokens",
        "step",
        learned_prompt_gflop(tokenizer, row, coco, n_ctx),
    )
    longest = max(templates, key=len).format("chest of drawers")
    unit(
        "vit_text_noun",
        f'ViT-B/16 text tower, a noun prompt in a batch cut at "{longest}"',
        "prompt",
        row(cut_length(tokenizer([longest]))),
    )

    # Dense passes (the pass and the head at every position).
    vit_dense = DenseClip(vit.model, pooling="attention")
    cnx = build_clip(ma["clip_model"], device="cpu", seed=0)
    cnx.model.train().requires_grad_(False)
    cnx.model.visual.to(META)
    cnx_dense = DenseClip(cnx.model, pooling="mean")
    dense_size = {}
    for key, name, dense in (("vit", "ViT-B/16", vit_dense), ("cnx", "ConvNeXt-L", cnx_dense)):
        for kind, (h, w) in (("train", (side, side)), ("eval", dense.input_size(h_eval, w_eval))):
            dense_size[key, kind] = (h, w)
            unit(
                f"{key}_dense_{kind}",
                f"{name} dense pass at {h} x {w} ({h // dense.stride} x {w // dense.stride} "
                "grid), head at every position",
                "image",
                gflop(lambda d=dense, h=h, w=w: d.projected(d.encode(torch.zeros(1, 3, h, w, device=META)))),
            )

    # Proposer.
    proposer_cfg = load_proposer_config(cfg["proposer"]["config"])
    proposer_cfg = replace(proposer_cfg, text_dim=vit.embed_dim)
    torch.manual_seed(0)
    proposer = build_proposer(proposer_cfg).train().requires_grad_(False).to(META)
    seen = seen_classes(cfg)

    def run_proposer(h: int, w: int, classes: int) -> float:
        return gflop(
            lambda: proposer(torch.zeros(1, 3, h, w, device=META), torch.zeros(classes, vit.embed_dim, device=META))
        )

    p_side = int(cfg["proposer"]["image_size"])
    unit(
        "proposer_train",
        f"proposer-r50 at {p_side} x {p_side}, {seen} classes",
        "image",
        run_proposer(p_side, p_side, seen),
    )
    unit(
        "proposer_mine",
        f"proposer-r50 at {COCO_IMAGE_SIZE[0]} x {COCO_IMAGE_SIZE[1]} (a COCO image), {seen} classes",
        "image",
        run_proposer(*COCO_IMAGE_SIZE, seen),
    )
    unit(
        "proposer_adapter", f"proposer-r50 at {side} x {side}, {seen} classes", "image", run_proposer(side, side, seen)
    )
    for name, (_, classes, _) in BENCHMARKS.items():
        units[f"proposer_eval_{name}"] = Unit(
            f"proposer-r50 at {h_eval} x {w_eval}, {classes} classes ({name})",
            "image",
            run_proposer(h_eval, w_eval, classes),
        )
        units[f"semantic_map_{name}"] = Unit(
            f"semantic map, {EVAL_PROPOSALS} proposals x {classes} classes at {h_eval} x {w_eval} ({name})",
            "image",
            gflop(
                lambda c=classes: semantic_map(
                    torch.zeros(EVAL_PROPOSALS, c, device=META),
                    torch.zeros(EVAL_PROPOSALS, h_eval, w_eval, device=META),
                )
            ),
        )

    # Mask-Adapter: maps (trained) and pooling (frozen, passes gradients), per image and per mask.
    widths = {k: ma[k] for k in ("num_maps", "hidden", "blocks", "mask_channels", "attention_depth")}
    for key, name, bundle, dense_clip in (
        ("vit", "@ft, ViT-B/16", vit, vit_dense),
        ("cnx", "@base, ConvNeXt-L", cnx, cnx_dense),
    ):
        adapter = (
            MaskAdapter(MaskAdapterConfig(clip_dim=bundle.embed_dim, pooling=dense_clip.pooling, **widths))
            .train()
            .requires_grad_(False)
            .to(META)
        )
        for kind in ("train", "eval"):
            h, w = dense_size[key, kind]
            maps, pool = adapter_gflop(adapter, dense_clip, h, w)
            grid = f"{h // dense_clip.stride} x {w // dense_clip.stride} grid"
            unit(
                f"adapter_{key}_maps_{kind}",
                f"Mask-Adapter{name} maps ({widths['hidden']} wide, {grid})",
                "mask",
                maps[1],
            )
            unit(
                f"adapter_{key}_pool_{kind}",
                f"Mask-Adapter{name} pooling of {widths['num_maps']} maps ({dense_clip.pooling}, {grid})",
                "mask",
                pool[1],
            )
            if maps[0] + pool[0] > 1e-6:  # attention pooling only (a mean has no per-image part)
                unit(
                    f"adapter_{key}_fixed_{kind}",
                    f"Mask-Adapter{name}, per-image part (the pooling's key and value projections; {grid})",
                    "image",
                    maps[0] + pool[0],
                )
        if key == "vit":  # maskpool: the same attention pooling, one query per mask
            h, w = dense_size["vit", "eval"]
            fixed, per_mask = maskpool_gflop(dense_clip, h, w)
            unit(
                "maskpool_mask",
                f"maskpool on ViT-B/16: one attention query per mask "
                f"({h // dense_clip.stride} x {w // dense_clip.stride} grid)",
                "mask",
                per_mask,
            )
            unit("maskpool_fixed", "maskpool on ViT-B/16, per-image part", "image", fixed)

    # Text embeddings, once per distinct text tower (benchmark names and COCO-Stuff's).
    synonyms = sorted({s for name in BENCHMARKS for c in class_names(name) for s in split_synonyms(c)} | set(coco))
    cnx_row = text_row_costs(cnx.model)
    vit_templates = template_gflop(tokenizer, row, synonyms, templates)
    text = {
        "ViT-B/16 base (also ft, ft_gt, mpt, ft_mpt: text tower locked), templates": vit_templates,
        "ViT-B/16 longer (text tower trained), templates": vit_templates,
        "ViT-B/16 prompts, ft_prompts (learned prompts, one row per synonym), x 2": 2
        * learned_prompt_gflop(tokenizer, row, synonyms, n_ctx),
        "ConvNeXt-L (adapter@base's own CLIP), templates": template_gflop(cnx.tokenizer, cnx_row, synonyms, templates),
    }
    return units, text, (len(synonyms), len(templates))


# ---------------------------------------------------------------- the stages


def stages(
    cfg: dict,
    units: dict[str, Unit],
    text: dict[str, float],
    vocabulary: tuple[int, int],
    pairs: int,
    adapter_masks: float,
) -> list[Stage]:
    u = {key: value.gflop for key, value in units.items()}
    synonyms, templates = vocabulary
    out = [
        Stage("prepare", "CPU: decodes and checks the benchmark pairs and COCO-Stuff's (Beam)"),
        Stage("world", "CPU: checks the folders, counts images"),
        Stage("nouns", "CPU: spaCy over 591,753 captions (Beam)"),
        Stage("base_clip", "loads the OpenAI weights, writes the folder"),
    ]

    epochs = int(cfg["proposer"]["epochs"])
    out.append(
        Stage("proposer", f"{epochs} epochs x {COCO_IMAGES:,} images, trained (3x)").add(
            3 * epochs * COCO_IMAGES * u["proposer_train"], "bf16"
        )
    )

    noun_table = MINED_NOUNS * templates * u["vit_text_noun"]
    out.append(
        Stage(
            "mine",
            f"{COCO_IMAGES:,} x (proposer + {MINE_CROPS_PER_IMAGE} crops) + "
            f"{MINED_NOUNS:,} nouns x {templates} prompts",
        ).add(COCO_IMAGES * (u["proposer_mine"] + MINE_CROPS_PER_IMAGE * u["vit_crop"]) + noun_table, "fp32")
    )

    ft_epochs, batch = int(cfg["finetune"]["epochs"]), int(cfg["finetune"]["batch_size"])
    out.append(
        Stage("finetune", f"{ft_epochs} epochs x {pairs:,} pairs, image tower trained (3x)").add(
            3 * ft_epochs * pairs * u["vit_crop"] + noun_table, "fp32"
        )
    )
    segments = round(COCO_IMAGES * SEGMENTS_PER_IMAGE)
    out.append(
        Stage("finetune_gt", f"{ft_epochs} epochs x ~{segments:,} segments (estimate), trained (3x)").add(
            3 * ft_epochs * segments * u["vit_crop"], "fp32"
        )
    )
    steps = ft_epochs * pairs // batch
    out.append(
        Stage("base_clip_longer", f"{steps:,} steps x {batch} image-caption pairs, both towers trained (3x)").add(
            3 * steps * batch * (u["vit_crop"] + u["vit_text_caption"]), "fp32"
        )
    )
    pt_epochs = int(cfg["prompt_tune"]["epochs"])
    for where in ("base", "ft"):
        out.append(
            Stage(
                f"prompt_tune@{where}",
                f"{pt_epochs} epochs x {pairs:,} pairs, frozen tower passes gradients to the prompts (2x)",
            ).add(2 * pt_epochs * pairs * u["vit_crop"] + noun_table, "fp32")
        )
    tp = cfg["text_prompts"]
    seen = seen_classes(cfg)
    tp_steps = int(tp["epochs"]) * (seen * int(tp["samples_per_class"]) // int(tp["batch_size"]))
    for where in ("base", "ft"):
        out.append(
            Stage(
                f"text_prompts@{where}",
                f"{tp_steps:,} steps x ({tp['batch_size']} crops (1x) + the text tower over every class (2x))",
            ).add(tp_steps * (int(tp["batch_size"]) * u["vit_crop"] + 2 * u["vit_text_prompts_step"]), "fp32")
        )

    ma = cfg["mask_adapter"]
    warm, mixed = int(ma["warmup_epochs"]), int(ma["mixed_epochs"])
    ma_epochs = warm + mixed
    proposer_epochs = ma_epochs if mixed > 0 else 0  # BatchPreparer runs it on every batch when mixed_epochs > 0
    for where, key in (("base", "cnx"), ("ft", "vit")):
        adapter = u.get(f"adapter_{key}_fixed_train", 0.0) + adapter_masks * (
            3 * u[f"adapter_{key}_maps_train"] + 2 * u[f"adapter_{key}_pool_train"]
        )
        out.append(
            Stage(
                f"mask_adapter@{where}",
                f"{ma_epochs} epochs x {COCO_IMAGES:,} images: CLIP pass (1x), "
                f"proposer (1x, every epoch), adapter on {adapter_masks:g} masks",
            )
            .add(ma_epochs * COCO_IMAGES * u[f"{key}_dense_train"], "fp32")
            .add(proposer_epochs * COCO_IMAGES * u["proposer_adapter"], "fp32")
            .add(ma_epochs * COCO_IMAGES * adapter, "bf16")
        )

    def one_pass(key: str, masks: float, adapter: bool) -> float:
        """One image through a one-pass classifier at the evaluation size."""
        if not adapter:
            return u["vit_dense_eval"] + u["maskpool_fixed"] + masks * u["maskpool_mask"]
        return (
            u[f"{key}_dense_eval"]
            + u.get(f"adapter_{key}_fixed_eval", 0.0)
            + masks * (u[f"adapter_{key}_maps_eval"] + u[f"adapter_{key}_pool_eval"])
        )

    images, _, gt = BENCHMARKS[CROPS_BENCHMARK]
    out.append(
        Stage(
            "crops",
            f"{CROPS_BENCHMARK} (assumed): {CROPS_CLIPS} CLIPs x ~{images * gt:,.0f} segment crops "
            "+ maskpool and 2 adapters on its images",
        ).add(
            images
            * (
                CROPS_CLIPS * gt * u["vit_crop"]
                + one_pass("vit", gt, False)
                + one_pass("cnx", gt, True)
                + one_pass("vit", gt, True)
            ),
            "fp32",
        )
    )

    total_images = sum(n for n, _, _ in BENCHMARKS.values())
    out.append(
        Stage("propose", f"proposer on {total_images:,} benchmark images").add(
            sum(n * u[f"proposer_eval_{b}"] for b, (n, _, _) in BENCHMARKS.items()), "fp32"
        )
    )
    maps = sum(n * u[f"semantic_map_{b}"] for b, (n, _, _) in BENCHMARKS.items())
    for variant in CROP_VARIANTS:
        out.append(
            Stage(f"evaluate@{variant}", f"{total_images:,} images x {EVAL_PROPOSALS} crops + semantic maps").add(
                total_images * EVAL_PROPOSALS * u["vit_crop"] + maps, "fp32"
            )
        )
    gt_crops = sum(n * g for n, _, g in BENCHMARKS.values())
    out.append(
        Stage("evaluate_references", f"oracle (semantic maps) + 2 CLIPs x ~{gt_crops:,.0f} ground-truth crops").add(
            maps + 2 * gt_crops * u["vit_crop"], "fp32"
        )
    )
    rows = [
        ("maskpool", "vit", False, None),
        ("adapter", "cnx", True, None),
        ("adapter_ens", "cnx", True, None),
        ("ft_adapter_ens", "vit", True, None),
        ("gt_masks_maskpool", "vit", False, "gt"),
        ("gt_masks_adapter", "cnx", True, "gt"),
        ("gt_masks_ft_adapter", "vit", True, "gt"),
    ]
    flops = 0.0
    for _, key, adapter, gt_rows in rows:
        for b, (n, _, g) in BENCHMARKS.items():
            masks = g if gt_rows else EVAL_PROPOSALS
            flops += n * (one_pass(key, masks, adapter) + (0 if gt_rows else u[f"semantic_map_{b}"]))
    out.append(
        Stage(
            "evaluate_one_pass",
            f"{len(rows)} rows x {total_images:,} images: dense passes + pooling "
            f"({EVAL_PROPOSALS} proposals or the ground-truth segments)",
        ).add(flops, "fp32")
    )
    out.append(Stage("report", "CPU only"))
    out.append(
        Stage(
            "(text embeddings)",
            f"{synonyms:,} synonyms on each distinct text tower (base, longer, "
            "prompts, ft_prompts, ConvNeXt-L), once if the disk cache is shared",
        ).add(sum(text.values()), "fp32")
    )
    return out


# ---------------------------------------------------------------- output


def fmt(value: float, digits: int = 2) -> str:
    if value == 0:
        return "–"
    if value < 10**-digits:
        return f"< {10**-digits:g}"
    return f"{value:,.{digits}f}"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument(
        "--tflops",
        type=float,
        default=125.0,
        help="sustained TFLOPS of one GPU (default 125: 40%% of an A100's 312 dense bf16)",
    )
    cli.add_argument(
        "--fp32-tflops",
        type=float,
        default=None,
        help="sustained TFLOPS for the parts the recipe runs in float32 (default: --tflops; "
        "an A100 without TF32 peaks at 19.5)",
    )
    cli.add_argument("--pairs", type=int, default=MINED_PAIRS, help="mined mask-noun pairs (default: %(default)s)")
    cli.add_argument(
        "--adapter-masks",
        type=float,
        default=ADAPTER_TRAIN_MASKS,
        help="masks per Mask-Adapter training image (default: %(default)s, the cap)",
    )
    cli.add_argument("--recipe", type=Path, default=ROOT / "configs/real-coco-vit-b16.yaml")
    cli.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    cli.add_argument("--threads", type=int, default=2)
    args = cli.parse_args()
    torch.set_num_threads(args.threads)
    rates = {"bf16": args.tflops, "fp32": args.fp32_tflops or args.tflops}

    start = time.perf_counter()
    cfg = load_recipe(args.params, args.recipe)
    units, text, vocabulary = measure(cfg)
    rows = stages(cfg, units, text, vocabulary, args.pairs, args.adapter_masks)
    seconds = time.perf_counter() - start

    print(
        f"## Forward GFLOPs per unit of work (FlopCounterMode, batch 1, random weights; counted in {seconds:.0f} s)\n"
    )
    print("| unit | per | GFLOP |")
    print("| --- | --- | ---: |")
    for value in units.values():
        print(f"| {value.label} | {value.per} | {value.gflop:,.2f} |")
    print(
        f"\nText embeddings, {vocabulary[0]:,} synonyms (5 benchmarks + COCO-Stuff) x {vocabulary[1]} "
        "templates, batches of 256 cut at the last EOT:\n"
    )
    print("| text tower | GFLOP |")
    print("| --- | ---: |")
    for key, value in text.items():
        print(f"| {key} | {fmt(value)} |")

    same = rates["fp32"] == rates["bf16"]
    rate_text = (
        f"{rates['bf16']:g} TFLOPS sustained"
        if same
        else f"{rates['bf16']:g} TFLOPS sustained for bf16, {rates['fp32']:g} for fp32"
    )
    print(f"\n## Per stage, one GPU at {rate_text}\n")
    print(
        "Rules: trained 3 x forward, frozen passing gradients 2 x, frozen 1 x. "
        f"{args.pairs:,} mined pairs; {args.adapter_masks:g} masks per Mask-Adapter training image.\n"
    )
    print("| stage | work | precision | PFLOP | hours |")
    print("| --- | --- | --- | ---: | ---: |")
    total_pflop = total_hours = 0.0
    for stage in rows:
        hours = stage.hours(rates)
        total_pflop += stage.pflop
        total_hours += hours
        print(f"| `{stage.name}` | {stage.work} | {stage.precision} | {fmt(stage.pflop, 1)} | {fmt(hours, 2)} |")
    print(f"| **total** | | | **{total_pflop:,.0f}** | **{total_hours:,.0f}** |")
    print("\nNotes:\n")
    print(
        "- hours = PFLOP / sustained rate. Data loading, decoding and element-wise work are not counted: "
        "real times are higher."
    )
    if same:
        fp32_rate = 0.4 * 19.5
        slow = sum(stage.hours({"bf16": rates["bf16"], "fp32": fp32_rate}) for stage in rows)
        print(
            f"- The fp32 parts run at the bf16 rate here. An A100 computes fp32 matmuls without TF32 at 19.5 "
            f"TFLOPS peak; at 40 % of that (--fp32-tflops {fp32_rate:g}) the total is {slow:,.0f} hours."
        )
    ma = cfg["mask_adapter"]
    epochs = int(ma["warmup_epochs"]) + int(ma["mixed_epochs"])
    for where, key in (("base", "cnx"), ("ft", "vit")):
        per_mask = (
            epochs
            * COCO_IMAGES
            * (3 * units[f"adapter_{key}_maps_train"].gflop + 2 * units[f"adapter_{key}_pool_train"].gflop)
            / 1e6
        )
        print(
            f"- mask_adapter@{where}: each mask per training image adds {per_mask:,.0f} PFLOP "
            f"({per_mask * 1e3 / rates['bf16'] / 3600:,.1f} h); --adapter-masks sets the count."
        )
    if int(ma["mixed_epochs"]) > 0:
        saved = int(ma["warmup_epochs"]) * COCO_IMAGES * units["proposer_adapter"].gflop / 1e6
        print(
            f"- mask_adapter: the streaming preparer runs the proposer in all {epochs} epochs, the "
            f"{int(ma['warmup_epochs'])} warm-up ones included, which do not use its matches: {saved:,.0f} PFLOP "
            "per adapter."
        )


if __name__ == "__main__":
    main()
