"""``--family rtmpose``: parity of ``rtmpose-m-ap10k`` with mmpose 1.3.2 (CSPNeXt + RTMCC head, SimCC).

Builds mmpose's own config
(``configs/animal_2d_keypoint/rtmpose/ap10k/rtmpose-m_8xb64-210e_ap10k-256x256.py``)
at a reduced size (``--csp-deepen``, ``--csp-widen`` of :mod:`mmpose_parity_cspnext`,
``--gau-dims`` / ``--gau-attention`` for the head's ``gau_cfg`` ``hidden_dims`` and
``s``; ``in_channels`` follows the widen factor, the 7x7 head convolution, the
256 x 256 input and the two bins per pixel stay), with the seeded weights of
:func:`mmpose_parity_cspnext.seeded_state`, runs ``mmpose.apis.inference_topdown``
(flip test with ``flip_vectors``, MSRA warp, ``SimCCLabel`` decoding) on the shared
fixture image and boxes, and writes ``rtmpose_*`` fixture files; ``--full`` builds
RTMPose-m as published and prints the largest differences only::

    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family rtmpose
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family rtmpose --full
"""

from __future__ import annotations

from mmpose_parity_cspnext import BACKBONE_CHANNELS, run_family, size_of

CONFIG = "configs/animal_2d_keypoint/rtmpose/ap10k/rtmpose-m_8xb64-210e_ap10k-256x256.py"
PRESET = "rtmpose-m-ap10k"
FULL_SIZE = {"deepen": 0.67, "widen": 0.75, "hidden": 256, "attention": 128}
"""RTMPose-m as published (``--full``)."""
FIXTURE_SIZE = {"deepen": 0.33, "widen": 0.125, "hidden": 32, "attention": 16}
"""The fixture: CSPNeXt with 1, 2, 2, 1 blocks and 16..128 channels; 32-dimensional tokens."""
CLASSIFIER_GAIN = 0.03
"""Scale of the random ``cls_x`` / ``cls_y`` weights: SimCC maxima (the scores) of a few units."""


def add_arguments(parser) -> None:
    """Size options of the RTMCC head (the backbone's are :mod:`mmpose_parity_cspnext`'s)."""
    parser.add_argument("--gau-dims", type=int, default=FIXTURE_SIZE["hidden"],
                        help="rtmpose fixture: token dimension (gau_cfg hidden_dims)")
    parser.add_argument("--gau-attention", type=int, default=FIXTURE_SIZE["attention"],
                        help="rtmpose fixture: attention dimension (gau_cfg s)")


def run(args, mmpose_version: str) -> int:
    """``--family rtmpose``: the reduced RTMPose fixture, or with ``--full`` RTMPose-m, printing only."""
    size = size_of(args, {k: FULL_SIZE[k] for k in ("deepen", "widen")},
                   {k: FIXTURE_SIZE[k] for k in ("deepen", "widen")})
    hidden = FULL_SIZE["hidden"] if args.full else getattr(args, "gau_dims", FIXTURE_SIZE["hidden"])
    attention = FULL_SIZE["attention"] if args.full else getattr(args, "gau_attention", FIXTURE_SIZE["attention"])
    widen, deepen = size["widen"], size["deepen"]
    overrides = {"model.backbone.deepen_factor": deepen, "model.backbone.widen_factor": widen,
                 "model.backbone.init_cfg": None, "model.head.in_channels": int(BACKBONE_CHANNELS * widen),
                 "model.head.gau_cfg.hidden_dims": hidden, "model.head.gau_cfg.s": attention}
    architecture = {"deepen_factor": deepen, "widen_factor": widen, "hidden_dims": hidden,
                    "attention_dims": attention}
    tag = f"d{deepen:g}_w{widen:g}_h{hidden}".replace(".", "")
    return run_family(args, mmpose_version, "rtmpose", CONFIG, PRESET, overrides, architecture,
                      f"rtmpose_{tag}_ap10k", {"flip_test": True, "shift_heatmap": False},
                      f"RTMPose deepen {deepen:g} widen {widen:g}, tokens {hidden}, attention {attention}",
                      gains={"head.cls_x": CLASSIFIER_GAIN, "head.cls_y": CLASSIFIER_GAIN})
