"""The mask-proposal model: a MaskFormer-style network whose classes are text embeddings.

Build from a JSON config (``load_proposer_config("proposer-demo")`` →
``build_proposer``), train with ``SetCriterion`` on ``semantic_targets``, save and
load with ``save_proposer`` / ``load_proposer``, and turn outputs into masks with
``propose``.
"""

from .config import ProposerConfig, config_from_dict, config_to_dict, load_proposer_config
from .criterion import SetCriterion
from .inference import Proposals, check_max_proposals, propose, top_proposals
from .io import load_proposer, read_proposer_manifest, save_proposer
from .matcher import HungarianMatcher, hungarian_match
from .network import MASK_STRIDE, MaskProposer, build_proposer
from .targets import GridTargets, SemanticTargets, grid_targets, semantic_targets
from .vocabulary import Vocabulary

__all__ = [
    "MASK_STRIDE",
    "GridTargets",
    "HungarianMatcher",
    "MaskProposer",
    "Proposals",
    "ProposerConfig",
    "SemanticTargets",
    "SetCriterion",
    "Vocabulary",
    "build_proposer",
    "check_max_proposals",
    "config_from_dict",
    "config_to_dict",
    "grid_targets",
    "hungarian_match",
    "load_proposer",
    "load_proposer_config",
    "propose",
    "read_proposer_manifest",
    "save_proposer",
    "semantic_targets",
    "top_proposals",
]
