"""Build settings: one frozen record, checked up front, serialisable into the manifest.

Everything that changes a byte of the output lives here (and nothing else does: the
number of workers, progress bars and paths are not part of it), so two builds with equal
configs and equal inputs are byte-identical and a resumed build can prove it continues
the same dataset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from fgbg.readers.schema import format_version_of

from .blend import check_blend, rotated_box
from .depth.presets import parse_preset
from .errors import FgbgError
from .floor_fit import Floor

__all__ = ["FORMAT_VERSION", "MAX_PEOPLE", "BuildConfig", "parse_range", "parse_size", "scaled_size", "scaled_sizes"]

#: Version of the on-disk layout (shards, receipts, manifest). Bump on any change to bytes.
#: Options make later versions (``format_version_of``: people 2, a Parquet index 3, zstd
#: members 4); every other dataset is still written as 1, so readers of format 1 keep reading it.
FORMAT_VERSION = 1
MAX_PEOPLE = 16  # people per composite: instance ids are 1..K in an 8-bit PNG
MAX_PERSON_M = 2.5  # the tallest person --position floor places (taller ones would not fit the frame)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """Parse ``"100x70"`` (width x height) or ``"224"`` (square) into ``(w, h)``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise FgbgError(f"{what}: expected WIDTHxHEIGHT such as 100x70, got {text!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) <= 0:
        raise FgbgError(f"{what}: expected two positive integers WIDTHxHEIGHT, got {text!r}")
    return nums[0], nums[1]


def parse_range(text: str, what: str = "range") -> tuple[float, float]:
    """Parse ``"0.7-1.3"`` or ``"1.0"`` into ``(lo, hi)``."""
    parts = text.split("-") if "-" in text.strip("-") else [text]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise FgbgError(f"{what}: expected LOW-HIGH such as 0.7-1.3, got {text!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or not 0 < nums[0] <= nums[1]:
        raise FgbgError(f"{what}: expected 0 < LOW <= HIGH, got {text!r}")
    return nums[0], nums[1]


@dataclass(frozen=True)
class BuildConfig:
    """Every setting that determines the bytes of a dataset."""

    size: int = 224
    fg_size: tuple[int, int] = (100, 70)
    keep_aspect: bool = False
    fg_scale: tuple[float, float] = (1.0, 1.0)
    placements: int = 20
    flips: int = 2
    seed: int = 0
    quality: int = 90
    shard_size: int = 1000
    depth: str = "plane"
    depth_size: tuple[int, int] | None = None
    depth_input: tuple[int, int] | None = None  # densedepth: model input (w, h), multiples of 32
    depth_dtype: str = "float32"  # densedepth/onnx: float32; reduced: float16, bfloat16, int8 (see runtimes)
    mask_threshold: int = 0
    soft_mask: bool = False
    # Fields added after format 1 was first written: None = what datasets made before them did
    # (omitted from the record then, so those datasets keep their fingerprints).
    depth_runtime: str | None = None  # densedepth: tensorflow (None), onnxruntime or openvino; onnx: either of the two
    depth_preset: str | None = None  # onnx: the model convention (see builder/depth/presets.py)
    blend: str | None = None  # None: straight alpha; hard, feather:R, poisson (see builder/blend.py)
    harmonize: float | None = None  # None: off; else Reinhard colour transfer strength in (0, 1]
    rotate: int | None = None  # None: upright; else each person turned by a whole angle in [-rotate, rotate] degrees
    people: tuple[int, int] | None = None  # None: one person; else (min, max) people per composite (format 2)
    max_occlusion: float | None = None  # with people: the largest share of a person others may hide (default 0.5)
    position: str | None = None  # None: uniform (anywhere); "floor": feet on the room's floor (builder/floor.py)
    person_height: tuple[float, float] | None = None  # floor: person height range in metres (default 1.5-1.9)
    members: str | None = None  # None: masks, depth, instance maps as PNG; "zstd": zstd-compressed .npy (format 4)
    depth_layers: bool | None = None  # None: the model runs per composite; True: once per background (depth/layers.py)
    # --depth-layers --position floor: each background's floor fitted from its stored prediction (floor_fit.py),
    # by background index; set by the build from the predictions, never by hand
    floors: tuple[Floor, ...] | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 16 <= self.size <= 4096:
            problems.append(f"--size must be 16..4096, got {self.size}")
        if self.placements < 1:
            problems.append(f"--placements must be >= 1, got {self.placements}")
        if self.flips not in (1, 2):
            problems.append(f"--flips must be 1 (no flip) or 2 (also mirrored), got {self.flips}")
        if not 0 <= self.seed < 2**63:
            problems.append(f"--seed must be 0..2**63-1, got {self.seed}")
        if not 1 <= self.quality <= 100:
            problems.append(f"--quality must be 1..100, got {self.quality}")
        if self.shard_size < 1:
            problems.append(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.depth == "densedepth" and self.depth_input and (self.depth_input[0] % 32 or self.depth_input[1] % 32):
            problems.append(f"--depth-input must be multiples of 32, got {self.depth_input[0]}x{self.depth_input[1]}")
        if self.depth_dtype not in ("float32", "float16", "bfloat16", "int8"):
            problems.append(f"--depth-dtype must be float32, float16, bfloat16 or int8, got {self.depth_dtype!r}")
        runtime = self.runtime
        if self.depth in ("densedepth", "onnx") and runtime not in _RUNTIMES[self.depth]:
            problems.append(f"--depth-runtime for --depth {self.depth} must be one of "
                            f"{', '.join(_RUNTIMES[self.depth])}, got {runtime!r}")
        elif self.depth_dtype != "float32" and (self.depth, runtime) not in _REDUCED.get(self.depth_dtype, ()):
            problems.append(f"--depth-dtype {self.depth_dtype} is not available with --depth {self.depth}"
                            f"{' on ' + runtime if runtime else ''} (it is with: "
                            f"{', '.join(f'{d} on {r}' for d, r in _REDUCED[self.depth_dtype])})")
        if self.depth == "onnx" and self.depth_preset is None:
            problems.append("--depth onnx needs --depth-preset (the model's input and output conventions)")
        elif self.depth == "onnx" and self.depth_preset is not None:
            try:
                parse_preset(self.depth_preset, self.depth_input)
            except ValueError as e:
                problems.append(str(e))
        blend_problem = check_blend(self.blend)
        if blend_problem:
            problems.append(blend_problem)
        turn = self.rotate is not None and type(self.rotate) is int and 1 <= self.rotate <= 180
        if self.rotate is not None and not turn:
            problems.append(f"--rotate must be a whole number of degrees 1..180, got {self.rotate!r}")
        if self.harmonize is not None and not 0 < self.harmonize <= 1:
            problems.append(f"--harmonize must be in (0, 1], got {self.harmonize}")
        problems += self._people_problems() + self._floor_problems()
        if self.depth_layers is not None and self.depth not in _RUNTIMES:
            problems.append(f"--depth-layers runs a learned model once per background: it needs --depth densedepth "
                            f"or --depth onnx, got --depth {self.depth} (plane already stands people at the floor's "
                            "depth)")
        elif self.depth_layers is not None and self.depth_layers is not True:
            problems.append(f"depth_layers must be true or absent, got {self.depth_layers!r}")
        problems += self._fit_problems()
        if self.members not in (None, "zstd"):
            problems.append(f"--members must be png or zstd, got {self.members!r}")
        if not 0 <= self.mask_threshold <= 254:
            problems.append(f"--mask-threshold must be 0..254, got {self.mask_threshold}")
        fw, fh = self.max_fg_size
        if turn and self.rotate is not None:  # the box of the person at the worst angle must fit too
            fw, fh = (max(v) for v in zip(*(rotated_box(fw, fh, a) for a in range(self.rotate + 1)), strict=True))
        if fw > self.size or fh > self.size:
            problems.append(
                f"foreground {fw}x{fh} (--fg-size {self.fg_size[0]}x{self.fg_size[1]} "
                f"x max --fg-scale {self.fg_scale[1]}{f', turned up to {self.rotate} degrees' if self.rotate else ''}"
                f") is larger than the {self.size}x{self.size} "
                "background; it must fit inside the composite"
            )
        if problems:
            raise FgbgError("; ".join(problems))

    def _people_problems(self) -> list[str]:
        if self.people is None:
            return [] if self.max_occlusion is None else ["--max-occlusion needs --people"]
        out = []
        lo, hi = self.people
        if not 1 <= lo <= hi <= MAX_PEOPLE:
            out.append(f"--people must be MIN-MAX with 1 <= MIN <= MAX <= {MAX_PEOPLE}, got {lo}-{hi}")
        if self.max_occlusion is None or not 0 <= self.max_occlusion < 1:
            out.append(f"--max-occlusion must be in [0, 1), got {self.max_occlusion}")
        return out

    def _floor_problems(self) -> list[str]:
        if self.position is None:
            return [] if self.person_height is None else ["--person-height needs --position floor"]
        if self.position != "floor":
            return [f"--position must be uniform or floor, got {self.position!r}"]
        out = []
        if self.person_height is None or not 0 < self.person_height[0] <= self.person_height[1] <= MAX_PERSON_M:
            out.append(f"--person-height must be LOW-HIGH metres with 0 < LOW <= HIGH <= {MAX_PERSON_M}, "
                       f"got {self.person_height}")
        if self.fg_scale != (1.0, 1.0):
            out.append("--fg-scale does not apply with --position floor (the floor's distance sizes each person)")
        if self.rotate is not None:
            out.append("--rotate does not apply with --position floor (a turned person has no feet on the floor)")
        return out

    def _fit_problems(self) -> list[str]:
        if self.floors is None:
            return []
        if not (self.depth_layers and self.position == "floor"):
            return ["floors (fitted from the stored predictions) need --depth-layers and --position floor"]
        bad = [i for i, f in enumerate(self.floors)
               if f.found and not (-self.size / 2 <= f.horizon < f.top <= f.bottom <= self.size)]
        return [f"floors: background {bad[0]}'s fitted floor is not a floor of a {self.size}-row frame"] if bad else []

    @property
    def max_fg_size(self) -> tuple[int, int]:
        """The largest box a foreground can take after scale jitter."""
        hi = self.fg_scale[1]
        return scaled_size(self.fg_size, hi)

    def format_version(self, parquet: bool = False) -> int:
        """The format a dataset with these settings (and that index) is written in."""
        return format_version_of(self.people is not None, parquet, self.members == "zstd")

    @property
    def runtime(self) -> str | None:
        """The runtime the depth model runs on (None: no model)."""
        if self.depth == "densedepth":
            return self.depth_runtime or "tensorflow"
        if self.depth == "onnx":
            return self.depth_runtime or "onnxruntime"
        return None

    @property
    def depth_input_shape(self) -> tuple[int, int]:
        """(w, h) the depth model runs at: the composite size rounded to a multiple of 32."""
        if self.depth_input:
            return self.depth_input
        side = max(32, round(self.size / 32) * 32)
        return side, side

    @property
    def depth_shape(self) -> tuple[int, int]:
        """(w, h) of stored depth maps: half the composite by default (the model's native size)."""
        return self.depth_size or (self.size // 2, self.size // 2)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depth_size"] = list(self.depth_shape)
        d["depth_input"] = list(self.depth_input_shape) if self.depth == "densedepth" else (
            list(self.depth_input) if self.depth_input else None)
        for late in ("depth_runtime", "depth_preset", "blend", "harmonize", "rotate", "people", "max_occlusion",
                     "position", "person_height", "members", "depth_layers", "floors"):
            if d[late] is None:
                del d[late]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


_RUNTIMES = {"densedepth": ("tensorflow", "onnxruntime", "openvino"), "onnx": ("onnxruntime", "openvino")}
#: reduced precisions and where they run: (depth backend, runtime)
_REDUCED = {
    "bfloat16": (("densedepth", "tensorflow"), ("densedepth", "openvino"), ("onnx", "openvino")),
    "float16": (("densedepth", "tensorflow"), ("densedepth", "openvino"), ("onnx", "openvino")),
    "int8": (("densedepth", "openvino"), ("onnx", "openvino")),
}


def scaled_sizes(base: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`scaled_size` of (n, 2) sizes and n scales at once: the same float64 product and
    sum, then the truncation ``int`` does (the values are positive), so the same integers."""
    wh = np.maximum(1, np.floor(base * np.asarray(scale, np.float64)[:, None] + 0.5)).astype(np.int64)
    return wh[:, 0], wh[:, 1]


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Box of a ``size`` foreground scaled by ``scale`` (rounded half up, at least 1 px)."""
    return max(1, int(size[0] * scale + 0.5)), max(1, int(size[1] * scale + 0.5))
