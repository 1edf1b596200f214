# SPDX-License-Identifier: MIT
"""Recipes for vision and video models without text (detection, OCR, towers, video encoders): the inputs they need.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.
"""

from __future__ import annotations

RECIPES = {}
