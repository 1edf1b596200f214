# SPDX-License-Identifier: MIT
"""Recipes for vision-language models (image or video with text): the pixel layouts, grids and placeholder tokens they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.
"""

from __future__ import annotations

RECIPES = {}
