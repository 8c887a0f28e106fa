import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.text_tower import encode_tokens, is_native_text_tower, native_text_tower

PROMPTS = ["a photo of a cat.", "a close-up photo of the large, weathered wooden chest of drawers.", "sky"]


def test_cut_at_the_last_eot_matches_the_whole_context(tiny_clip):
    tokens = tiny_clip.tokenize(PROMPTS)
    last_eot = int(tokens.argmax(dim=1).max())
    assert last_eot + 1 < tokens.shape[1]  # there is padding to cut
    with torch.no_grad():
        whole = tiny_clip.model.encode_text(tokens, normalize=True)
        cut = F.normalize(encode_tokens(tiny_clip.model, tokens), dim=-1)
        alone = F.normalize(encode_tokens(tiny_clip.model, tokens[2:]), dim=-1)  # its own, shorter cut
    torch.testing.assert_close(cut, whole, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, whole[2:], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiny_clip.encode_text(PROMPTS), whole, rtol=0, atol=1e-5)


def test_splice_edits_the_token_embeddings_before_the_positions(tiny_clip):
    tokens = tiny_clip.tokenize(PROMPTS[:1])
    with torch.no_grad():
        plain = encode_tokens(tiny_clip.model, tokens)
        same = encode_tokens(tiny_clip.model, tokens, lambda x: x.clone())
        zeroed = encode_tokens(tiny_clip.model, tokens, lambda x: torch.cat([x[:, :1], 0 * x[:, 1:2], x[:, 2:]], 1))
    assert torch.equal(plain, same) and not torch.allclose(plain, zeroed)


def test_other_text_towers_are_named_in_the_error():
    class HFTextCLIP(nn.Module):
        token_embedding = positional_embedding = None

    assert not is_native_text_tower(HFTextCLIP())
    with pytest.raises(TypeError, match="HFTextCLIP lacks transformer, ln_final, text_projection, attn_mask"):
        native_text_tower(HFTextCLIP())


def test_a_row_does_not_depend_on_its_batch(tiny_clip):
    """Mining and evaluation batch nouns and names differently on every runner: a row's features must not
    depend on the rows beside it (a cut at the batch's longest row would make them depend on it)."""
    tokens = tiny_clip.tokenize(PROMPTS + ["a photo of a dog.", "a photo of the sky."])
    with torch.no_grad():
        together = encode_tokens(tiny_clip.model, tokens)
        alone = torch.cat([encode_tokens(tiny_clip.model, tokens[i : i + 1]) for i in range(len(tokens))])
        shuffled = encode_tokens(tiny_clip.model, tokens[[4, 2, 0, 3, 1]])
    assert torch.equal(together, alone)
    assert torch.equal(shuffled, together[[4, 2, 0, 3, 1]])
