"""Vocabulary trimming: keep a language's tokens, rewrite the tokenizer, slice the embeddings."""
