"""rlbricks.modules: TensorDict-aware nn modules, actors, distributions, models, exploration.

(Module docstring with a short runnable example: written when the package is assembled.)
"""

__version__ = "0.1.0"

# --- core: TensorDict modules, actors, exploration, LSTMModule (owner: helper A) ---
# --- end core ---

# --- distributions and models (owner: helper B) ---
# --- end distributions and models ---

__all__: list[str] = [
    # --- core names (helper A) ---
    # --- end core names ---
    # --- distributions and models names (helper B) ---
    # --- end distributions and models names ---
]
