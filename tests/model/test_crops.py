"""model.crops: box geometry, mean fill, resizing and odd masks on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from model.crops import expand_boxes, mask_boxes, masked_crops

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
MEAN_T = torch.tensor(MEAN).view(3, 1, 1)
STD_T = torch.tensor(STD).view(3, 1, 1)


def _image(height: int = 40, width: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def _masks(n: int, height: int = 40, width: int = 50) -> torch.Tensor:
    return torch.zeros(n, height, width, dtype=torch.bool)


def test_boxes_are_tight_and_end_exclusive():
    masks = _masks(3)
    masks[0, 5:12, 20:31] = True
    masks[1, 0, 49] = True
    masks[2, 3:4, 7:9] = True
    masks[2, 30, 1] = True
    assert mask_boxes(masks).tolist() == [[20, 5, 31, 12], [49, 0, 50, 1], [1, 3, 9, 31]]


def test_crop_at_native_size_is_the_painted_normalised_box():
    """Box size == crop size: bicubic is the identity, so the crop is exactly the box with the fill."""
    image = _image()
    masks = _masks(1)
    masks[0, 10:26, 20:36] = True  # a 16x16 box
    masks[0, 10:18, 20:24] = False  # an L-shaped hole: part of the box is background
    result = masked_crops(image, masks, size=16, mean=MEAN, std=STD)
    box = (image[:, 10:26, 20:36] - MEAN_T) / STD_T
    expected = torch.where(masks[0, 10:26, 20:36], box, torch.zeros(()))
    assert result.boxes.tolist() == [[20, 10, 36, 26]]
    assert torch.allclose(result.crops[0], expected, atol=1e-6)
    assert torch.equal(result.crop_masks[0], masks[0, 10:26, 20:36])
    assert result.valid.tolist() == [True]


def test_background_is_mean_colour_so_zero_after_normalisation():
    image = _image()
    masks = _masks(1)
    masks[0, 0:20, 0:4] = True  # a vertical bar ...
    masks[0, 16:20, 0:20] = True  # ... and a horizontal bar: an L filling a 20x20 box
    result = masked_crops(image, masks, size=40, mean=MEAN, std=STD)
    crop = result.crops[0]
    # Upsampled 2x: output pixels whose 4x4 bicubic support is background only are exactly zero.
    assert torch.count_nonzero(crop[:, 0:28, 12:40]) == 0
    assert crop[:, 0:28, 0:6].abs().sum() > 0  # the bar is there
    assert result.crop_masks[0, :32, :8].all() and not result.crop_masks[0, :32, 8:].any()
    # The same as painting CLIP's mean colour in pixel space, resizing, then normalising.
    painted = torch.where(masks[0], image, MEAN_T)[:, 0:20, 0:20]
    resized = torch.nn.functional.interpolate(painted[None], size=(40, 40), mode="bicubic", align_corners=False)[0]
    assert torch.allclose((resized - MEAN_T) / STD_T, crop, atol=1e-5)
    as_uint8 = masked_crops((image * 255).round().to(torch.uint8), masks, size=40, mean=MEAN, std=STD)
    assert torch.allclose(as_uint8.crops, result.crops, atol=0.05)


def test_resizing_is_bicubic_and_square():
    image = _image()
    masks = _masks(1)
    masks[0, 4:12, 10:34] = True  # 8 rows x 24 columns: stretched to a square
    result = masked_crops(image, masks, size=24, mean=MEAN, std=STD)
    box = ((image[:, 4:12, 10:34] - MEAN_T) / STD_T)[None]
    expected = torch.nn.functional.interpolate(box, size=(24, 24), mode="bicubic", align_corners=False)[0]
    assert result.crops.shape == (1, 3, 24, 24)
    assert torch.allclose(result.crops[0], expected, atol=1e-5)
    assert result.crop_masks.all()


def test_border_and_one_pixel_masks():
    image = _image()
    masks = _masks(3)
    masks[0, 35:, 44:] = True  # bottom-right corner
    masks[1, 7, 9] = True  # a single pixel
    masks[2, :, 0] = True  # left edge, full height
    result = masked_crops(image, masks, size=8, mean=MEAN, std=STD, expand_ratio=0.5)
    assert result.valid.all()
    boxes = result.boxes.tolist()
    assert boxes[0] == [42, 33, 50, 40]  # 6x5 box grown to 9x7.5 about its centre, clamped at the border
    assert boxes[2] == [0, 0, 2, 40]  # width 1 grows to [-0.25, 1.25], rounded out and clamped
    pixel = (image[:, 7, 9] - MEAN_T[:, 0, 0]) / STD_T[:, 0, 0]
    one = masked_crops(image, masks[1:2], size=8, mean=MEAN, std=STD)
    assert one.boxes.tolist() == [[9, 7, 10, 8]]
    assert torch.allclose(one.crops[0], pixel.view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    assert one.crop_masks.all()
    assert torch.isfinite(result.crops).all()


def test_empty_masks_are_invalid_zero_crops():
    image = _image()
    masks = _masks(3)
    masks[1, 2:5, 2:5] = True
    result = masked_crops(image, masks, size=8, mean=MEAN, std=STD, expand_ratio=0.2)
    assert result.valid.tolist() == [False, True, False]
    assert result.boxes[0].tolist() == [0, 0, 0, 0] and result.boxes[2].tolist() == [0, 0, 0, 0]
    assert not result.crops[[0, 2]].any() and not result.crop_masks[[0, 2]].any()
    none = masked_crops(image, masks[:0], size=8, mean=MEAN, std=STD)
    assert none.crops.shape == (0, 3, 8, 8) and none.boxes.shape == (0, 4) and none.valid.shape == (0,)


def test_expand_boxes_scales_about_the_centre():
    boxes = torch.tensor([[10, 10, 20, 20], [0, 0, 4, 2], [0, 0, 0, 0]])
    assert expand_boxes(boxes, 1.0, 100, 100).tolist() == [[5, 5, 25, 25], [0, 0, 6, 3], [0, 0, 0, 0]]
    assert expand_boxes(boxes, 0.0, 100, 100).tolist() == boxes.tolist()
    with pytest.raises(ValueError, match="expand_ratio"):
        expand_boxes(boxes, -0.1, 100, 100)


def test_bad_inputs_are_refused():
    image = _image()
    with pytest.raises(TypeError, match="bool"):
        masked_crops(image, torch.zeros(1, 40, 50), size=8, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="matching the image"):
        masked_crops(image, _masks(1, 40, 49), size=8, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        masked_crops(image[:1], _masks(1), size=8, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="size"):
        masked_crops(image, _masks(1), size=0, mean=MEAN, std=STD)
