# SPDX-License-Identifier: MIT
"""Recipes for model types whose transformers default config does not build as it is (a missing or None attribute, a per-layer-type table without the layer type used): the fix_config recipes that complete it.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through Ctx.torch.
"""

from __future__ import annotations

RECIPES = {}
