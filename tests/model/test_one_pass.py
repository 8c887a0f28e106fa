"""OnePassSegmenter: Mask-Adapter's family on a random tiny proposer and CLIP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.clip import build_clip
from model.dense_clip import mask_weights
from model.mask_adapter import (
    OWN_CLIP_DIR,
    MaskAdapter,
    MaskAdapterConfig,
    adapter_clip_folder,
    load_adapter_and_clip,
    save_mask_adapter,
)
from model.one_pass import OnePassSegmenter
from model.oracle import gt_segments
from model.proposal_segmenter import image_to_tensor
from model.proposer.inference import Proposals
from model.scoring import adapter_ensemble, predict_labels
from tests.doubles import label_map

NAMES = ["cat", "dog, puppy", "sky", "grass"]


@pytest.fixture(scope="module")
def adapter():
    torch.manual_seed(0)
    return MaskAdapter(MaskAdapterConfig(clip_dim=128, num_maps=2, hidden=8, blocks=1, mask_prior=4.0)).eval()


def image(height: int = 40, width: int = 56) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("use_adapter", [False, True])
def test_segment_is_the_ensemble_of_one_pass_probabilities(proposer, tiny_clip, adapter, use_adapter):
    seg = OnePassSegmenter(proposer, tiny_clip, adapter=adapter if use_adapter else None, alpha=0.6, beta=0.8)
    labels = seg.segment(image(), NAMES)
    assert labels.shape == (40, 56) and labels.dtype == np.int32
    # The same by hand: proposals, the one-pass probabilities, Mask-Adapter's ensemble, the semantic map.
    tensor = image_to_tensor(image(), seg.device)
    text = seg.text_embeddings(NAMES)
    props = seg.propose(tensor[None], text)
    p_clip = seg.clip_probs([tensor], [props.masks[0]], text)[0]
    probs = adapter_ensemble(props.class_probs[0], p_clip, 0.6, 0.8)
    assert np.array_equal(labels, predict_labels(probs, props.mask_probs[0]).numpy())


def test_the_adapter_reads_proposals_binarised_at_its_own_threshold(proposer, tiny_clip, adapter):
    probs = torch.zeros(1, 3, 8, 8)
    probs[0, 0, :4] = 0.45  # above the crop path's 0.4, below the adapter's 0.5
    probs[0, 1, :4] = 0.7
    props = Proposals(mask_probs=probs, class_probs=torch.zeros(1, 3, 4), scores=torch.ones(1, 3), masks=probs > 0.4)
    seg = OnePassSegmenter(proposer, tiny_clip, adapter=adapter, mask_threshold=0.4, adapter_mask_threshold=0.5)
    assert seg.clip_masks(props).flatten(1).any(1).tolist() == [False, True, False]
    assert torch.equal(seg.clip_masks(props), probs[0] > 0.5)
    # maskpool (no adapter) reads the crop path's masks
    pooled = OnePassSegmenter(proposer, tiny_clip, mask_threshold=0.4, adapter_mask_threshold=0.5)
    assert pooled.clip_masks(props).flatten(1).any(1).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="adapter_mask_threshold"):
        OnePassSegmenter(proposer, tiny_clip, adapter=adapter, adapter_mask_threshold=1.0)


def test_maskpool_probabilities_come_from_pooling_the_resized_image(tiny_clip):
    seg = OnePassSegmenter(None, tiny_clip, pooling="mean")
    tensor = image_to_tensor(image(), seg.device)  # 40 x 56 -> 40 x 56 (multiples of 8)
    _classes, masks = gt_segments(label_map())
    embeddings = seg.mask_embeddings([tensor], [masks])[0]
    normalised = (tensor - tiny_clip.mean[:, None, None]) / tiny_clip.std[:, None, None]
    with torch.no_grad():
        dense = seg.dense.encode(normalised[None])
        expected = seg.dense.pool(dense, mask_weights(masks, dense.grid)[None])[0]
    assert torch.allclose(embeddings, expected, atol=1e-6)
    labels = seg.classify_gt_segments(image(), label_map(), NAMES)
    assert set(np.unique(labels[label_map() == -1])) == {-1}


def test_images_of_several_sizes_and_empty_masks(proposer, tiny_clip, adapter):
    seg = OnePassSegmenter(proposer, tiny_clip, adapter=adapter, image_batch_size=2)
    images = [image_to_tensor(image(h, w), seg.device) for h, w in ((40, 56), (33, 47), (40, 56))]
    masks = [torch.zeros(3, *t.shape[1:], dtype=torch.bool) for t in images]
    masks[0][0, 5:20, 5:20] = True
    probs = seg.clip_probs(images, masks, seg.text_embeddings(NAMES))
    assert [p.shape for p in probs] == [(3, 4)] * 3
    assert torch.allclose(probs[1], torch.full((3, 4), 0.25))  # empty masks: uniform
    alone = seg.clip_probs(images[:1], masks[:1], seg.text_embeddings(NAMES))[0]
    assert torch.allclose(alone, probs[0], atol=1e-6)  # batching does not change an image's result


def test_exponents_are_checked(tiny_clip):
    with pytest.raises(ValueError, match="alpha must lie in"):
        OnePassSegmenter(None, tiny_clip, alpha=1.5)


def test_an_adapter_with_its_own_clip_classifies_with_it_and_the_proposer_keeps_its_text(proposer, tiny_clip, tmp_path):
    # The paper's road: a ConvNeXt CLIP of the adapter's own (another embedding size than the proposer's).
    config = {
        "embed_dim": 48,
        "vision_cfg": {
            "timm_model_name": "convnext_atto",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "mlp",
            "image_size": 64,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "convnext.json").write_text(json.dumps(config))
    convnext = build_clip(str(tmp_path / "convnext.json"), device="cpu", seed=0)
    torch.manual_seed(0)
    own = MaskAdapter(MaskAdapterConfig(clip_dim=48, num_maps=2, hidden=8, blocks=1, pooling="mean"))
    folder = save_mask_adapter(
        own, tmp_path / "adapter", clip_model=convnext.model, own_clip=convnext, extra={"clip": OWN_CLIP_DIR}
    )
    assert adapter_clip_folder(folder) == folder / OWN_CLIP_DIR
    adapter, clip, proposer_clip = load_adapter_and_clip(folder, tiny_clip, "cpu")
    assert clip.embed_dim == 48 and proposer_clip is tiny_clip
    seg = OnePassSegmenter(proposer, clip, adapter=adapter, proposer_clip=proposer_clip)
    labels = seg.segment(image(64, 64), NAMES)
    assert labels.shape == (64, 64)
    with pytest.raises(ValueError, match="expects text embeddings of size 128, the CLIP gives 48"):
        OnePassSegmenter(proposer, clip, adapter=adapter)
