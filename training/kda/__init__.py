"""KDA: a frozen source-language teacher taught a target language through frozen target
embeddings and a small trained adapter, distilled on parallel sentences."""

VARIANTS = ("linear", "linear+self", "linear+cross", "full")
