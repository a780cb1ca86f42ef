"""The serving stacks a user would otherwise deploy, each wrapping the same classifier."""
