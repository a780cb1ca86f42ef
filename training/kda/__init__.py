"""KDA: a frozen source-language teacher taught a target language through frozen target
embeddings and a small trained adapter, distilled on parallel sentences."""

from typing import Literal, get_args

Variant = Literal["linear", "linear+self", "linear+cross", "full"]
VARIANTS: tuple[str, ...] = get_args(Variant)
