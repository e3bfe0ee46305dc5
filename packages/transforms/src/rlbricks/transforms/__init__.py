"""rlbricks.transforms: rewrite what envs output and read, on envs and on plain TensorDicts.

A :class:`Transform` works in two places: attached to an env through
:class:`TransformedEnv` (it rewrites the env's outputs, its action inputs and
its specs) and on a plain TensorDict such as a replay-buffer sample
(``transform(td)``). :class:`Compose` chains transforms.

Example:
    >>> from rlbricks.envs import check_env_specs
    >>> from rlbricks.envs.testing import CountingEnv
    >>> from rlbricks.transforms import Compose, RewardSum, StepCounter, TransformedEnv
    >>> env = TransformedEnv(CountingEnv(max_steps=4), Compose(StepCounter(), RewardSum()))
    >>> check_env_specs(env)
    >>> env.rollout(10)["next", "step_count"].squeeze(-1).tolist()
    [1, 2, 3, 4]
"""

from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import Transform
from rlbricks.transforms._clip import ClipTransform
from rlbricks.transforms._compose import Compose
from rlbricks.transforms._counters import InitTracker
from rlbricks.transforms._counters import StepCounter
from rlbricks.transforms._dtype import DoubleToFloat
from rlbricks.transforms._dtype import DTypeCastTransform
from rlbricks.transforms._env import TransformedEnv
from rlbricks.transforms._errors import TransformError
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformTypeError
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._keys import CatTensors
from rlbricks.transforms._keys import ExcludeTransform
from rlbricks.transforms._keys import RenameTransform
from rlbricks.transforms._keys import SelectTransform
from rlbricks.transforms._reward import RewardClipping
from rlbricks.transforms._reward import RewardScaling
from rlbricks.transforms._reward import RewardSum
from rlbricks.transforms._shape import FlattenObservation
from rlbricks.transforms._shape import UnsqueezeTransform

# isort: split
# --- part B ---
from rlbricks.transforms._catframes import CatFrames
from rlbricks.transforms._episode import FrameSkipTransform
from rlbricks.transforms._episode import NoopResetEnv
from rlbricks.transforms._image import CenterCrop
from rlbricks.transforms._image import GrayScale
from rlbricks.transforms._image import Resize
from rlbricks.transforms._image import ToTensorImage
from rlbricks.transforms._multistep import MultiStepTransform
from rlbricks.transforms._norm import ObservationNorm
from rlbricks.transforms._vecnorm import VecNorm

# --- end part B ---

__version__ = "0.1.1"

__all__ = [
    # base
    "Transform",
    "TransformedEnv",
    "Compose",
    "EnvSpecs",
    "TransformError",
    "TransformValueError",
    "TransformKeyError",
    "TransformTypeError",
    # dtypes
    "DoubleToFloat",
    "DTypeCastTransform",
    # rewards
    "RewardScaling",
    "RewardClipping",
    "RewardSum",
    # episode bookkeeping
    "StepCounter",
    "InitTracker",
    # keys and shapes
    "CatTensors",
    "RenameTransform",
    "ExcludeTransform",
    "SelectTransform",
    "FlattenObservation",
    "UnsqueezeTransform",
    "ClipTransform",
    # --- part B ---
    # normalisation
    "ObservationNorm",
    "VecNorm",
    # images
    "ToTensorImage",
    "Resize",
    "GrayScale",
    "CenterCrop",
    "CatFrames",
    # episodes and time
    "NoopResetEnv",
    "FrameSkipTransform",
    "MultiStepTransform",
    # --- end part B ---
]
