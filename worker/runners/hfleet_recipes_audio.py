# SPDX-License-Identifier: MIT
"""Recipes for audio, speech, codec, time-series and other non-text, non-vision models: the inputs and configs they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.
"""

from __future__ import annotations

RECIPES = {}
