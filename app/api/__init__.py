"""HTTP layer: pydantic models at the edge, thin routes over the registry."""
